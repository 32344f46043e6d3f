"""Stream a request body into a staged upload: raw ``application/dicom`` or multipart.

The multipart body is pushed through python-multipart's streaming parser chunk by chunk, and
only the ``file`` part's bytes reach the staging file: no part is buffered in memory or spooled
twice, whatever the upload's size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from dicom_file_service.errors import (
    EmptyUpload,
    MalformedBody,
    MissingFileField,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from dicom_file_service.service.staging import StagedUpload, StagingPipe

RAW_TYPES = ("application/dicom", "application/octet-stream")
_MAX_OTHER_FIELD_BYTES = 64 * 1024


def check_declared_length(content_length: str | None, max_bytes: int) -> None:
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError as exc:
        raise MalformedBody("Content-Length is not a number") from exc
    if declared > max_bytes + 64 * 1024:  # allow for multipart framing
        raise PayloadTooLarge(
            f"the upload ({declared} bytes) exceeds the limit of {max_bytes} bytes "
            "(setting DICOM_FS_MAX_UPLOAD_BYTES)"
        )


async def read_upload_within(
    seconds: float, content_type: str | None, body: AsyncIterator[bytes], staged: StagedUpload
) -> None:
    """``read_upload``, given up after ``seconds`` (a 408): a client that sends slowly or
    stops sending does not hold a scratch file and a connection for ever."""
    try:
        async with asyncio.timeout(seconds):
            await read_upload(content_type, body, staged)
    except TimeoutError as exc:
        raise RequestTimeout(
            f"the upload was not received within {seconds:.0f} s "
            "(setting DICOM_FS_UPLOAD_TIMEOUT_SECONDS)"
        ) from exc


async def read_upload(
    content_type: str | None, body: AsyncIterator[bytes], staged: StagedUpload
) -> None:
    """Fill ``staged`` from the body according to its content type."""
    media, params = parse_options_header(content_type or "")
    media_type = media.decode("latin-1").lower()
    if media_type not in RAW_TYPES and media_type != "multipart/form-data":
        raise _unsupported(media_type)
    pipe = StagingPipe(staged)
    try:
        if media_type in RAW_TYPES:
            async for chunk in body:
                pipe.add(chunk)
                await pipe.pump()
        else:
            boundary = params.get(b"boundary")
            if not boundary:
                raise MalformedBody("multipart/form-data without a boundary parameter")
            await _read_multipart(boundary, body, pipe)
        await pipe.close()
    except BaseException:
        await pipe.abandon()
        raise


def _unsupported(media_type: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"Content-Type {media_type or '(none)'!r} is not accepted: send multipart/form-data "
        "with the file in a field named 'file' (curl -F \"file=@IM000001\"), or the raw bytes "
        "with Content-Type: application/dicom"
    )


class _FormState:
    def __init__(self, pipe: StagingPipe) -> None:
        self.pipe = pipe
        self.header_field = b""
        self.header_value = b""
        self.part_name: str | None = None
        self.in_file = False
        self.file_seen = False
        self.other_bytes = 0
        self.error: Exception | None = None

    def on_part_begin(self) -> None:
        self.part_name = None
        self.in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_field.lower() == b"content-disposition":
            _, opts = parse_options_header(self.header_value)
            name = opts.get(b"name")
            self.part_name = name.decode("utf-8", "replace") if name is not None else None
        self.header_field = b""
        self.header_value = b""

    def on_headers_finished(self) -> None:
        if self.part_name == "file":
            if self.file_seen:
                self.error = MalformedBody("send one file per request: found a second 'file' part")
                return
            self.file_seen = True
            self.in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self.in_file:
            try:
                self.pipe.add(data[start:end])
            except PayloadTooLarge as exc:
                self.error = exc
        else:
            self.other_bytes += end - start
            if self.other_bytes > _MAX_OTHER_FIELD_BYTES:
                self.error = PayloadTooLarge("form fields other than 'file' exceed 64 KiB")

    def on_part_end(self) -> None:
        self.in_file = False


async def _read_multipart(boundary: bytes, body: AsyncIterator[bytes], pipe: StagingPipe) -> None:
    state = _FormState(pipe)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": state.on_part_begin,
            "on_header_field": state.on_header_field,
            "on_header_value": state.on_header_value,
            "on_header_end": state.on_header_end,
            "on_headers_finished": state.on_headers_finished,
            "on_part_data": state.on_part_data,
            "on_part_end": state.on_part_end,
        },
    )
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            parser.write(chunk)
            if state.error is not None:
                raise state.error
            await pipe.pump()
        parser.finalize()
        if parser.state != MultipartState.END and state.error is None and received:
            raise MalformedBody("the multipart body ended before its closing boundary")
    except MultipartParseError as exc:
        raise MalformedBody(f"the multipart body cannot be parsed: {exc}") from exc
    if state.error is not None:
        raise state.error
    if received == 0:
        raise EmptyUpload("the request body is empty: send the DICOM file in a field named 'file'")
    if not state.file_seen:
        raise MissingFileField(
            "the multipart body has no field named 'file': send it as curl -F \"file=@IM000001\""
        )
