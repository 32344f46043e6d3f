"""The rendering cache: PNGs of a stored file, kept as objects of the blob store.

A small interface of its own (get / put / delete a file's renderings) so that a cache hit
works the same on every store: a file read on local disk, a GET on S3. Renderings are derived
data: they are written without a flush to disk and can always be made again. Keys are
``renderings/<shard>/<file_id>/<options key>.png``; a file's renderings go with it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

from dicom_file_service.storage.base import BlobNotFound, BlobStore


class RenderCache(Protocol):
    def get(self, file_id: str, key: str) -> bytes | None:
        """The cached rendering, or None."""
        ...

    async def get_async(self, file_id: str, key: str) -> bytes | None:
        """``get`` for the event loop (the fast path of cached renderings)."""
        ...

    def recall(self, file_id: str, key: str) -> bytes | None:
        """The rendering if it is at hand without I/O (in memory), else None."""
        ...

    def put(self, file_id: str, key: str, png: bytes) -> None: ...

    def remember(self, file_id: str, key: str, png: bytes) -> None:
        """Keep the rendering in this process's memory only (where there is such a layer)."""
        ...

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

    def recall(self, file_id: str, key: str) -> bytes | None:
        return None  # every answer is a read of the store

    def put(self, file_id: str, key: str, png: bytes) -> None:
        self._store.put_bytes(self._key(file_id, key), png, durable=False)

    def remember(self, file_id: str, key: str, png: bytes) -> None:
        return None  # no memory of its own

    def delete(self, file_id: str, key: str) -> None:
        self._store.delete(self._key(file_id, key))

    def delete_all(self, file_id: str) -> None:
        self._store.delete_prefix(renderings_prefix(file_id))


class MemoryRenderCache:
    """A bounded in-process LRU of renderings in front of another ``RenderCache``.

    A stored file never changes, so its rendering is valid for as long as the file exists;
    the service checks that in the index before it serves a hit, so a rendering of a file
    deleted on another instance is never served from here. It costs no object GET on a remote
    store and no file read on a local one.
    """

    def __init__(self, inner: RenderCache, max_bytes: int) -> None:
        self._inner = inner
        self._max = max_bytes
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def recall(self, file_id: str, key: str) -> bytes | None:
        with self._lock:
            png = self._entries.get((file_id, key))
            if png is not None:
                self._entries.move_to_end((file_id, key))
            return png

    def remember(self, file_id: str, key: str, png: bytes) -> None:
        if len(png) > self._max // 8:  # one large rendering must not evict everything
            return
        with self._lock:
            old = self._entries.pop((file_id, key), None)
            self._size += len(png) - (len(old) if old is not None else 0)
            self._entries[(file_id, key)] = png
            while self._size > self._max:
                _, evicted = self._entries.popitem(last=False)
                self._size -= len(evicted)

    def _forget(self, file_id: str, key: str | None = None) -> None:
        with self._lock:
            doomed = [k for k in self._entries if k[0] == file_id and key in (None, k[1])]
            for k in doomed:
                self._size -= len(self._entries.pop(k))

    def get(self, file_id: str, key: str) -> bytes | None:
        png = self.recall(file_id, key)
        if png is None:
            png = self._inner.get(file_id, key)
            if png is not None:
                self.remember(file_id, key, png)
        return png

    async def get_async(self, file_id: str, key: str) -> bytes | None:
        png = self.recall(file_id, key)
        if png is None:
            png = await self._inner.get_async(file_id, key)
            if png is not None:
                self.remember(file_id, key, png)
        return png

    def put(self, file_id: str, key: str, png: bytes) -> None:
        self._inner.put(file_id, key, png)
        self.remember(file_id, key, png)

    def delete(self, file_id: str, key: str) -> None:
        self._forget(file_id, key)
        self._inner.delete(file_id, key)

    def delete_all(self, file_id: str) -> None:
        self._forget(file_id)
        self._inner.delete_all(file_id)
