"""A stored file as an HTTP answer: its bytes unchanged, with ``ETag`` (its SHA-256),
``Range`` / ``If-Range``, ``If-None-Match`` and its file name. The file API's download, the
signed download of the local backend and WADO-URI's ``application/dicom`` all answer so.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from dicom_file_service.api.conditional import byte_range, not_modified
from dicom_file_service.api.negotiation import DICOM
from dicom_file_service.api.responses import IMMUTABLE, stream_response
from dicom_file_service.service import instances
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.records import InstanceRecord


async def send_stored_file(
    request: Request, ctx: ServiceContext, record: InstanceRecord
) -> Response:
    etag = f'"{record.sha256}"'
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"etag": etag})
    headers = {
        "etag": etag,
        "cache-control": IMMUTABLE,
        "content-disposition": f'attachment; filename="{record.sop_instance_uid}.dcm"',
        "accept-ranges": "bytes",
    }
    size = record.size
    status, (start, end) = 200, (0, size)
    wanted = byte_range(request.headers.get("range"), request.headers.get("if-range"), etag, size)
    if wanted is not None:
        status, (start, end) = 206, wanted
        headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    headers["content-length"] = str(end - start)
    # Every store streams from an object it opened before answering (a local file's open
    # handle keeps its bytes if a delete races the download): a lost blob is a 404.
    if request.method == "HEAD":
        await run_in_threadpool(instances.check_stored, ctx, record)
        return Response(status_code=status, media_type=DICOM, headers=headers)
    chunks = await run_in_threadpool(instances.stored_bytes, ctx, record, start, end)
    return stream_response(chunks, DICOM, headers, status)
