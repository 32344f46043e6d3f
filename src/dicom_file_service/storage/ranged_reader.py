"""A seekable, read-only file over a function that fetches byte ranges.

pydicom reads a header element by element and a frame by seeking to it; given this reader over
a remote object, it fetches exactly those bytes (in ranged requests), never the whole object.
Wrapped in an ``io.BufferedReader``, small reads (element headers) are served from one buffer.
"""

from __future__ import annotations

import io
from collections.abc import Callable


class RangedReader(io.RawIOBase):
    """``fetch(start, end)`` returns bytes ``start..end`` of an object of ``size`` bytes."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._pos = 0
        self.bytes_fetched = 0  # what the reader cost, for tests and metrics

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

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        end = min(self._pos + len(buffer), self._size)
        if end <= self._pos:
            return 0
        data = self._fetch(self._pos, end)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        self.bytes_fetched += n
        return n
