"""The blob store boundary: objects under opaque, service-generated keys, nothing more.

Keys look like ``instances/ab/<file_id>`` and are never derived from UIDs or file names.
Every backend guarantees that an object is either wholly present or absent: nothing
half-written is ever visible under its key, and ``put_*`` returns only once the object is
durable. Uploads in progress are not objects: they live in the scratch area
(``storage.scratch``). Renderings are objects too, reached through ``storage.render_cache``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from dicom_file_service.errors import BlobNotFound

__all__ = ["BlobNotFound", "BlobStore"]


class BlobStore(Protocol):
    """What the service needs of a place to keep bytes."""

    # Each call waits on a network (an object store): the service overlaps calls with other
    # work (an upload's put with its parse, for which ``put_file`` leaves its source in place;
    # a rendering's first read with the render cache's answer). False: the local disk, where
    # ``put_file`` moves the file into place and a read costs less than the overlap.
    remote: bool

    def put_file(self, key: str, path: Path) -> None:
        """Store the local file at ``path`` under ``key``, durably. The file may be consumed
        (moved into place); the caller never uses it again."""
        ...

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store ``data`` under ``key`` atomically; ``durable=False`` may skip the flush to
        disk (for derived data such as renderings, which can be made again)."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole object (meant for small ones: renderings). Raises BlobNotFound."""
        ...

    async def get_bytes_async(self, key: str) -> bytes:
        """``get_bytes`` for the event loop, without a worker thread where the backend can."""
        ...

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive), shorter at the end of the object."""
        ...

    async def read_range_async(self, key: str, start: int, end: int) -> bytes:
        """``read_range`` for the event loop, without a worker thread where the backend can."""
        ...

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 256 * 1024
    ) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive; None = to the end), streamed in chunks.
        Raises BlobNotFound before the first chunk when the object is absent."""
        ...

    def open_reader(self, key: str, size: int | None = None, head: bytes = b"") -> BinaryIO:
        """A seekable reader that fetches only the bytes it is asked for (ranged reads on a
        remote store). ``size``, when the caller knows it, saves asking the store; ``head``,
        the object's first bytes already read (``read_range_async``), saves reading them
        again where reads are ranged. Raises BlobNotFound (on a remote store, possibly only
        at the first read)."""
        ...

    def size(self, key: str) -> int:
        """The object's length in bytes. Raises BlobNotFound."""
        ...

    def exists(self, key: str) -> bool: ...

    def at_hand(self, key: str) -> bool:
        """Whether the object's bytes are on this machine's disk, to be read without a
        network round trip (a local store's objects; a remote store's local copies)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object if present (idempotent)."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object whose key starts with ``prefix`` + "/" (idempotent)."""
        ...

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, modification time as a Unix timestamp) of every object under ``prefix``."""
        ...

    def presign(self, method: Literal["GET", "PUT"], key: str, expires_in: timedelta) -> str | None:
        """A URL that lets a client without credentials GET or PUT this one object until it
        expires; None when the backend cannot sign (the service then signs its own URL)."""
        ...

    def check(self) -> None:
        """Raise if the store is not usable (readiness)."""
        ...

    def close(self) -> None:
        """Stop what the store runs in the background (its objects stay)."""
        ...
