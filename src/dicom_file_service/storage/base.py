"""The blob store boundary: a handful of operations on opaque, service-generated keys.

Keys look like ``instances/ab/cd/<file_id>`` and are never derived from UIDs or file names.
Every backend guarantees that an object is either wholly present or absent: nothing
half-written is ever visible under its key, and ``put_*`` returns only once the object is
durable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


class BlobNotFound(Exception):
    """The key has no object (the service maps it to FileNotFound where that is the meaning)."""


class BlobStore(Protocol):
    """What the service needs of a place to keep bytes."""

    def staging_dir(self) -> Path:
        """A local directory for uploads in progress (same filesystem as the store if local)."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key``, durably, consuming (moving) the file."""
        ...

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store ``data`` under ``key`` atomically; ``durable=False`` skips the flush to disk
        (for derived data such as renderings, which can be made again)."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A readable, seekable binary stream of the object. Raises BlobNotFound."""
        ...

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 256 * 1024
    ) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive; None = to the end), in chunks."""
        ...

    def size(self, key: str) -> int:
        """The object's length in bytes. Raises BlobNotFound."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object if present (idempotent)."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object whose key starts with ``prefix`` + "/" (idempotent)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The object's path on this machine when the backend has one (zero-copy reads)."""
        ...

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, modification time as a Unix timestamp) of every object under ``prefix``."""
        ...

    def prepare_prefixes(self, prefixes: list[str]) -> None:
        """Create the key prefixes the service will write under (directories on a local
        disk, durably, once), so that no write pays for creating one. A no-op where
        prefixes are not real (object stores)."""
        ...

    def sweep_staging(self, older_than_seconds: float) -> int:
        """Remove abandoned uploads from the staging area; returns how many went."""
        ...

    def check(self) -> None:
        """Raise if the store is not usable (readiness)."""
        ...
