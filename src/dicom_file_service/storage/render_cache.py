"""The rendering cache: PNGs of a stored file, kept as objects of the blob store.

A small interface of its own (get / put / delete a file's renderings) so that a cache hit
works the same on every store: a file read on local disk, a GET on S3. Renderings are derived
data: they are written without a flush to disk and can always be made again. Keys are
``renderings/<shard>/<file_id>/<options key>.png``; a file's renderings go with it.
"""

from __future__ import annotations

from typing import Protocol

from dicom_file_service.storage.base import BlobNotFound, BlobStore


class RenderCache(Protocol):
    def get(self, file_id: str, key: str) -> bytes | None:
        """The cached rendering, or None."""
        ...

    async def get_async(self, file_id: str, key: str) -> bytes | None:
        """``get`` for the event loop (the fast path of cached renderings)."""
        ...

    def put(self, file_id: str, key: str, png: bytes) -> None: ...

    def delete(self, file_id: str, key: str) -> None: ...

    def delete_all(self, file_id: str) -> None:
        """Every rendering of the file (idempotent)."""
        ...


def renderings_prefix(file_id: str) -> str:
    return f"renderings/{file_id[:2]}/{file_id}"


class BlobRenderCache:
    """A ``RenderCache`` in any ``BlobStore``."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store

    def _key(self, file_id: str, key: str) -> str:
        return f"{renderings_prefix(file_id)}/{key}.png"

    def get(self, file_id: str, key: str) -> bytes | None:
        try:
            return self._store.get_bytes(self._key(file_id, key))
        except BlobNotFound:
            return None

    async def get_async(self, file_id: str, key: str) -> bytes | None:
        try:
            return await self._store.get_bytes_async(self._key(file_id, key))
        except BlobNotFound:
            return None

    def put(self, file_id: str, key: str, png: bytes) -> None:
        self._store.put_bytes(self._key(file_id, key), png, durable=False)

    def delete(self, file_id: str, key: str) -> None:
        self._store.delete(self._key(file_id, key))

    def delete_all(self, file_id: str) -> None:
        self._store.delete_prefix(renderings_prefix(file_id))
