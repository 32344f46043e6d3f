"""The file API (README, "Usage"): the original contract (upload, download, tag, PNG) and more.

Routes are thin: parse the request, call one service function, shape the response.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import (
    FileResponse,
    MalformedRangeHeader,
    RangeNotSatisfiable,
    Response,
    StreamingResponse,
)

from dicom_file_service.api import logs
from dicom_file_service.api.bulk_response import send_bulk_value
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.fast_paths import IMMUTABLE
from dicom_file_service.api.upload_body import check_declared_length, read_upload
from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.errors import InvalidParameter, RequestTimeout
from dicom_file_service.errors import RangeNotSatisfiable as RangeNotSatisfiableError
from dicom_file_service.service import files as files_service
from dicom_file_service.service import rendering as rendering_service
from dicom_file_service.service.ingest import ingest_staged
from dicom_file_service.service.records import file_summary
from dicom_file_service.service.staging import StagedUpload
from dicom_file_service.storage import BlobNotFound

router = APIRouter(tags=["files"])


def json_response(content: Any, status_code: int = 200, **headers: str) -> Response:
    return Response(
        orjson.dumps(content),
        status_code=status_code,
        media_type="application/json",
        headers=headers or None,
    )


@router.post(
    "/dicom-image",
    status_code=201,
    summary="Store one DICOM file",
    description=(
        "Body: multipart/form-data with the file in field `file` "
        '(`curl -X POST -F "file=@IM000001" .../dicom-image`), or the raw bytes with '
        "`Content-Type: application/dicom`. 201 for a new instance, 200 when byte-identical "
        "content is already stored (same `file_id`), 409 when the SOP Instance UID is stored "
        "with other content (unless `overwrite=true`)."
    ),
    responses={200: {"description": "already stored"}, 409: {"description": "duplicate"}},
)
async def upload(
    request: Request,
    overwrite: Annotated[bool, Query(description="replace an instance with the same UID")] = False,
) -> Response:
    ctx = service_context(request)
    max_bytes = ctx.settings.max_upload_bytes
    check_declared_length(request.headers.get("content-length"), max_bytes)
    with StagedUpload(ctx.scratch, max_bytes) as staged:
        limit = ctx.settings.upload_timeout_seconds
        try:
            async with asyncio.timeout(limit):
                await read_upload(request.headers.get("content-type"), request.stream(), staged)
        except TimeoutError as exc:
            raise RequestTimeout(
                f"the upload was not received within {limit:.0f} s "
                "(setting DICOM_FS_UPLOAD_TIMEOUT_SECONDS)"
            ) from exc
        result = await ctx.run_ingest(lambda: ingest_staged(ctx, staged, overwrite=overwrite))
    body = file_summary(result.record)
    logs.note(file_id=result.record.file_id)
    location = f"/dicom-image/{result.record.file_id}"
    return json_response(body, 201 if result.created else 200, location=location)


@router.get("/dicom-image", summary="List stored files, newest first")
async def list_files(
    request: Request,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
    patient_id: str | None = None,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    modality: str | None = None,
) -> Response:
    ctx = service_context(request)
    filters = {
        k: v
        for k, v in {
            "patient_id": patient_id,
            "study_instance_uid": study_instance_uid,
            "series_instance_uid": series_instance_uid,
            "modality": modality,
        }.items()
        if v is not None
    }
    page = await run_in_threadpool(
        files_service.list_files, ctx, limit=limit, cursor=cursor, filters=filters
    )
    return json_response({"items": page.items, "next_cursor": page.next_cursor})


@router.api_route(
    "/dicom-image/{file_id}",
    methods=["GET", "HEAD"],
    summary="Download the stored file, or one or more header attributes with ?dicom_tag=",
    description=(
        "Without `dicom_tag`: the stored bytes unchanged (`application/dicom`, `ETag`, "
        "`Range`). With `dicom_tag` (repeatable): the attribute as JSON "
        '`{"tag", "keyword", "name", "vr", "vm", "value"}`, a list when repeated. Accepted: '
        "`(0010,0010)`, `0010,0010`, `00100010`, `0x00100010`, `PatientName`, private and "
        "file-meta tags, sequence paths `ReferencedSeriesSequence[0].SeriesInstanceUID`."
    ),
    response_model=None,
)
async def get_file(
    request: Request,
    file_id: str,
    dicom_tag: Annotated[list[str] | None, Query()] = None,
) -> Response:
    ctx = service_context(request)
    if dicom_tag is not None:
        answers = await files_service.get_attributes_async(ctx, file_id, dicom_tag)
        return json_response(answers[0] if len(answers) == 1 else answers)
    record = await run_in_threadpool(files_service.get_record, ctx, file_id)
    return await send_stored_file(request, ctx, record)


async def send_stored_file(request: Request, ctx: Any, record: Any) -> Response:
    """The stored bytes with ETag, Range/If-Range, If-None-Match and the file name."""
    etag = f'"{record.sha256}"'
    headers = {
        "etag": etag,
        "cache-control": IMMUTABLE,
        "content-disposition": f'attachment; filename="{record.sop_instance_uid}.dcm"',
    }
    if _not_modified(request, etag):
        return Response(status_code=304, headers={"etag": etag})
    # Every store streams from a file it opened before answering (a local file's open handle
    # keeps its bytes if a delete races the download): a lost blob is a 404, never a 500.
    return await _stream_from_store(request, ctx, record, headers)


@router.get(
    "/dicom-image/{file_id}/metadata",
    summary="The whole header as DICOM JSON (PS3.18 F.2), bulk data as BulkDataURI",
)
async def get_metadata(request: Request, file_id: str) -> Response:
    ctx = service_context(request)
    body = await files_service.metadata_async(ctx, file_id)
    return Response(body, media_type="application/dicom+json")


@router.get(
    "/dicom-image/{file_id}/bulkdata/{location:path}",
    summary="The value of a bulk data element named by a BulkDataURI of /metadata",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_bulk_data(request: Request, file_id: str, location: str) -> Response:
    ctx = service_context(request)
    record, found = await ctx.run_cpu(lambda: files_service.bulk_value(ctx, file_id, location))
    return await send_bulk_value(ctx, record, found, multipart=False)


@router.api_route(
    "/dicom-image/{file_id}/png",
    methods=["GET", "HEAD"],
    summary="A PNG for browser viewing",
    description=(
        "Modality LUT → VOI (file window with its VOI LUT Function, VOI LUT Sequence, else "
        "min–max) → MONOCHROME1 inversion → 8-bit; colour images as RGB."
    ),
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def get_png(
    request: Request,
    file_id: str,
    frame: Annotated[int, Query(ge=1, description="1-based frame number")] = 1,
    window_center: float | None = None,
    window_width: Annotated[float | None, Query(gt=0)] = None,
    voi: Literal["file", "minmax"] = "file",
    width: Annotated[int | None, Query(ge=1, le=65535)] = None,
    height: Annotated[int | None, Query(ge=1, le=65535)] = None,
    bit_depth: Annotated[int, Query(description="8, or 16 for the modality values")] = 8,
) -> Response:
    ctx = service_context(request)
    if (window_center is None) != (window_width is None):
        raise InvalidParameter("give both window_center and window_width, or neither")
    options = RenderOptions(
        frame=frame,
        window_center=window_center,
        window_width=window_width,
        voi=voi,
        width=width,
        height=height,
        bit_depth=bit_depth,  # type: ignore[arg-type]  # RenderOptions validates: 8 or 16
    )
    etag = rendering_service.rendering_etag(file_id, options)
    headers = {"etag": etag, "cache-control": IMMUTABLE}
    result = await ctx.run_cpu(lambda: rendering_service.render_blocking(ctx, file_id, options))
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(result.data, media_type="image/png", headers=headers)


@router.delete("/dicom-image/{file_id}", status_code=204, summary="Delete a stored file")
async def delete_file(request: Request, file_id: str) -> Response:
    ctx = service_context(request)
    await run_in_threadpool(files_service.delete_file, ctx, file_id)
    return Response(status_code=204)


async def _stream_from_store(
    request: Request, ctx: Any, record: Any, headers: dict[str, str]
) -> Response:
    """The stored bytes from a remote store, by ranged GETs: whole, or one byte range."""
    size = record.size
    start, end, status = 0, size, 200
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header is not None and (if_range is None or if_range == headers["etag"]):
        try:
            ranges = FileResponse._parse_range_header(range_header, size)
        except MalformedRangeHeader:  # RFC 9110 14.2: an invalid Range is ignored
            ranges = []
        except RangeNotSatisfiable as exc:
            raise RangeNotSatisfiableError(
                f"the range {range_header!r} lies outside the file's {size} bytes"
            ) from exc
        if len(ranges) == 1:  # several ranges: the whole file (allowed by RFC 9110 14.2)
            start, end = ranges[0]
            status = 206
            headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    headers["content-length"] = str(end - start)
    headers["accept-ranges"] = "bytes"
    try:
        if request.method == "HEAD":
            await run_in_threadpool(ctx.store.size, record.blob_key)  # there, or a 404
            return Response(status_code=status, media_type="application/dicom", headers=headers)
        chunks = await run_in_threadpool(ctx.store.iter_range, record.blob_key, start, end)
    except BlobNotFound as exc:  # deleted meanwhile, or lost by the store
        raise files_service.not_found(record.file_id) from exc
    return StreamingResponse(
        iterate_in_threadpool(chunks),
        status_code=status,
        media_type="application/dicom",
        headers=headers,
    )


def _not_modified(request: Request, etag: str) -> bool:
    match = request.headers.get("if-none-match")
    return match is not None and (match.strip() == "*" or etag in match)
