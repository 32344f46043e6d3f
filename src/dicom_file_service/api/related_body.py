"""Stream a ``multipart/related`` request body (STOW-RS) into one staged file per part.

The body goes through python-multipart's push parser chunk by chunk; each part's bytes go
straight to a file in the scratch area, and a part is handed on as soon as it ends, so no
more than the parts that end within one received chunk are ever staged at once, whatever the
request's size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from dicom_file_service.errors import (
    MalformedBody,
    PayloadTooLarge,
    ServiceError,
    TruncatedBody,
    UnsupportedMediaType,
)
from dicom_file_service.service.staging import StagedUpload

DICOM = "application/dicom"


def related_boundary(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/related; type="application/dicom"`` body, else a 415
    (another media type) or a 400 (no boundary)."""
    media, params = parse_options_header(content_type or "")
    media_type = media.decode("latin-1").lower()
    part_type = params.get(b"type", b"").decode("latin-1").lower()
    if media_type != "multipart/related" or part_type not in ("", DICOM):
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'!r} is not accepted: STOW-RS takes "
            'multipart/related; type="application/dicom" with one DICOM file per part'
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedBody("multipart/related without a boundary parameter")
    return boundary


class _Parts:
    def __init__(self, new_part: Callable[[], StagedUpload]) -> None:
        self.new_part = new_part
        self.current: StagedUpload | None = None
        self.current_error: ServiceError | None = None
        self.header_field = b""
        self.header_value = b""
        self.part_type: str | None = None
        self.done: list[tuple[StagedUpload | None, ServiceError | None]] = []

    def on_part_begin(self) -> None:
        self.current = self.new_part()
        self.current_error = None
        self.part_type = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_field.lower() == b"content-type":
            media, _ = parse_options_header(self.header_value)
            self.part_type = media.decode("latin-1").lower()
        self.header_field = self.header_value = b""

    def on_headers_finished(self) -> None:
        if self.part_type not in (None, DICOM):
            self.current_error = UnsupportedMediaType(
                f"a part of type {self.part_type!r}: STOW-RS parts are application/dicom"
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.current is None or self.current_error is not None:
            return
        try:
            self.current.write(data[start:end])
        except PayloadTooLarge as exc:
            self.current_error = exc

    def on_part_end(self) -> None:
        part, self.current = self.current, None
        if self.current_error is not None and part is not None:
            part.discard()
            part = None
        self.done.append((part, self.current_error))

    def discard_all(self) -> None:
        for part, _ in self.done:
            if part is not None:
                part.discard()
        self.done.clear()
        if self.current is not None:
            self.current.discard()
            self.current = None


async def read_parts(
    boundary: bytes,
    body: AsyncIterator[bytes],
    new_part: Callable[[], StagedUpload],
    on_part: Callable[[int, StagedUpload | None, ServiceError | None], Awaitable[None]],
    *,
    concurrency: int = 1,
) -> int:
    """Call ``on_part(index, staged file or None, error or None)`` for each part as it ends
    (each staged in a file from ``new_part``, which bounds its size);
    returns the number of parts. A body that is not multipart is a ``MalformedBody``.

    Up to ``concurrency`` parts are handled at once while the body is read on, so one part's
    storing (parse, fsync, commit) overlaps the next part's arrival and storing; reading
    pauses when that many are in flight, so at most that many parts are ever staged. Each
    staged file is removed once its handler has finished, and this returns only when every
    handler has.
    """
    parts = _Parts(new_part)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": parts.on_part_begin,
            "on_header_field": parts.on_header_field,
            "on_header_value": parts.on_header_value,
            "on_header_end": parts.on_header_end,
            "on_headers_finished": parts.on_headers_finished,
            "on_part_data": parts.on_part_data,
            "on_part_end": parts.on_part_end,
        },
    )
    slots = asyncio.Semaphore(concurrency)
    in_flight: set[asyncio.Task[None]] = set()

    async def handle(index: int, part: StagedUpload | None, error: ServiceError | None) -> None:
        try:
            await on_part(index, part, error)
        finally:
            if part is not None:
                part.discard()
            slots.release()

    count = 0
    try:
        async for chunk in body:
            parser.write(chunk)
            while parts.done:
                part, error = parts.done.pop(0)
                await slots.acquire()
                task = asyncio.create_task(handle(count, part, error))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                count += 1
        parser.finalize()
    except MultipartParseError as exc:
        raise MalformedBody(f"the multipart body cannot be parsed: {exc}") from exc
    finally:
        if in_flight:  # their staged files go when they end, whatever happens here
            done, _ = await asyncio.wait(set(in_flight))
            for task in done:
                task.result()  # a handler's own failure is the request's
        parts.discard_all()
    if parser.state != MultipartState.END:
        if count:
            raise TruncatedBody(count)
        raise MalformedBody("the multipart body ended before its closing boundary")
    return count
