"""A seekable, read-only file over a function that fetches byte ranges.

pydicom reads a header element by element and a frame by seeking to it; given this reader over
a remote object, it fetches exactly those bytes (in ranged requests), never the whole object.
Small reads (element headers, short values) are served from a few cached aligned blocks; a
large read (a frame, a bulk value) is one request for exactly its bytes.

It is deliberately not an ``io.BufferedReader``: pydicom takes one of those for a local file
and re-opens it by name to read deferred values.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable

BLOCK = 64 * 1024
_CACHED_BLOCKS = 8


class RangedReader(io.RawIOBase):
    """``fetch(start, end)`` returns bytes ``start..end`` of an object of ``size`` bytes;
    ``head``, its first bytes if they were read already (a whole first block is kept as one)."""

    def __init__(
        self, fetch: Callable[[int, int], bytes], size: int, name: str = "", head: bytes = b""
    ) -> None:
        super().__init__()
        self.name = name  # pydicom names its source in messages
        self._fetch = fetch
        self._size = size
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self.bytes_fetched = 0  # what the reader cost, for tests and metrics
        self.requests = 0
        if head and len(head) == min(BLOCK, size):
            self._blocks[0] = head

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError("negative seek position")
        self._pos = pos
        return pos

    def _get(self, start: int, end: int) -> bytes:
        self.requests += 1
        data = self._fetch(start, end)
        self.bytes_fetched += len(data)
        return data

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is None:
            start = index * BLOCK
            block = self._get(start, min(start + BLOCK, self._size))
            self._blocks[index] = block
            if len(self._blocks) > _CACHED_BLOCKS:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(index)
        return block

    def read(self, size: int | None = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._pos + size, self._size)
        if end <= self._pos:
            return b""
        start = self._pos
        if end - start > BLOCK:
            data = self._get(start, end)
        else:
            parts = []
            for index in range(start // BLOCK, (end - 1) // BLOCK + 1):
                block = self._block(index)
                lo = max(start - index * BLOCK, 0)
                hi = min(end - index * BLOCK, len(block))
                parts.append(block[lo:hi])
            data = b"".join(parts)
        self._pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
