"""The one ``multipart/related`` writer (RFC 2387, PS3.18 8.6.1.2), for every answer made of
parts: instances, frames, bulk data and renderings.

Parts are written as they are produced: an instance's bytes stream from the store chunk by
chunk, so a study of any size is never held whole. An iterator of parts that raises
``FileNotFound`` (an instance deleted while its study streams) ends the answer short, as a
stream already under way must.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from dicom_file_service.errors import FileNotFound


@dataclass(frozen=True)
class Part:
    """One part: its headers (without the blank line) and its body, as chunks."""

    headers: dict[str, str]
    chunks: Iterable[bytes]


def content_type(part_type: str, boundary: str) -> str:
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def write_parts(parts: Iterable[Part], boundary: str) -> Iterator[bytes]:
    """The body: each part's delimiter and headers, then its chunks; the close delimiter."""
    try:
        for part in parts:
            head = "".join(f"{name}: {value}\r\n" for name, value in part.headers.items())
            yield f"--{boundary}\r\n{head}\r\n".encode()
            yield from part.chunks
            yield b"\r\n"
    except FileNotFound:
        return  # deleted while streaming: the answer ends short, with no close delimiter
    yield f"--{boundary}--\r\n".encode()


def related_response(part_type: str, parts: Iterable[Part], **headers: str) -> Response:
    """Parts already in memory (frames, renderings): one body with its length."""
    boundary = uuid.uuid4().hex
    return Response(
        b"".join(write_parts(parts, boundary)),
        media_type=content_type(part_type, boundary),
        headers=headers or None,
    )


def streamed_related_response(part_type: str, parts: Iterable[Part], **headers: str) -> Response:
    """Parts read from storage as the answer goes (blocking reads, in the thread pool),
    coalesced into pieces of about a megabyte: a study of small instances costs one thread hop
    per megabyte, not several per instance."""
    boundary = uuid.uuid4().hex

    async def body() -> AsyncIterator[bytes]:
        async for chunk in iterate_in_threadpool(coalesced(write_parts(parts, boundary))):
            yield chunk

    return StreamingResponse(
        body(), media_type=content_type(part_type, boundary), headers=headers or None
    )


def coalesced(chunks: Iterator[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """The chunks joined into pieces of about ``size`` bytes."""
    pending: list[bytes] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)
