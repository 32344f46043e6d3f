"""A bulk data value as an HTTP answer, streamed from the stored file by its byte span.

The value is never held whole: a 2 GB Pixel Data goes out in ranged reads of the store,
bare (``application/octet-stream``) or as the one part of a ``multipart/related`` answer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import Response, StreamingResponse

from dicom_file_service.api.fast_paths import IMMUTABLE
from dicom_file_service.dicom.bulk import BulkSpan
from dicom_file_service.service.context import ServiceContext

OCTET_STREAM = "application/octet-stream"


async def send_bulk_value(
    ctx: ServiceContext, record: Any, found: BulkSpan | bytes, *, multipart: bool
) -> Response:
    if isinstance(found, bytes):
        chunks: Iterator[bytes] = iter([found])
        length = len(found)
    else:
        start, length = found.offset, found.length
        chunks = await run_in_threadpool(
            ctx.store.iter_range, record.blob_key, start, start + length
        )
    headers = {"cache-control": IMMUTABLE}
    if not multipart:
        headers["content-length"] = str(length)
        return StreamingResponse(
            iterate_in_threadpool(chunks), media_type=OCTET_STREAM, headers=headers
        )
    boundary = uuid.uuid4().hex
    head = f"--{boundary}\r\nContent-Type: {OCTET_STREAM}\r\nContent-Length: {length}\r\n\r\n"

    async def body() -> AsyncIterator[bytes]:
        yield head.encode()
        async for chunk in iterate_in_threadpool(chunks):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    return StreamingResponse(
        body(),
        media_type=f'multipart/related; type="{OCTET_STREAM}"; boundary={boundary}',
        headers=headers,
    )
