"""Copies of recently stored files on the instance's own disk, in front of a remote store.

A file is most often read soon after it arrives: a viewer opens the study a modality has
just sent, a router forwards it, the background rendering makes its thumbnail. Without a
copy each of those reads is a round trip to the object store (1-3 ms to SeaweedFS on the
same machine, tens of milliseconds to a cloud store), and a rendering of an uncompressed
image fetches its whole frame from there. The upload's staged file is already on the
instance's disk when its put succeeds, so keeping it costs a hard link; the page cache then
serves the reads.

What makes this safe:

- **The store stays the truth.** A copy is made only after the remote put succeeded and is
  never the only place a file is; losing the directory loses nothing.
- **A copy never outlives its file for a reader.** Every read path asks the index for the
  file's key first, and a deleted file's key is never given out again (keys are per file
  id, and an overwrite gets a new id). A delete through this instance removes the copy at
  once; a delete through another instance leaves this instance's copy unread until the sweep
  removes it, at most ``max_age_seconds`` after it was made.
- **Bounded.** Copies older than ``max_age_seconds`` go, then the oldest until the directory
  holds at most ``capacity_bytes``, and fewer where the disk would otherwise have less than a
  tenth of it free (the copies must never be what fills the disk uploads are staged on); a
  file larger than a quarter of the capacity is not copied. The
  sweep runs in a thread of its own, periodically and whenever this process has added an
  eighth of the capacity since the last one, so the directory exceeds its bound by at most
  that per process. Every process of an instance may share the directory: each copy is
  written to a temporary name and renamed into place, a reader holds its copy open (a sweep
  that unlinks it meanwhile takes nothing from the reader), and a copy that is gone when
  looked for is read from the store.
- **Only stored files.** Keys outside ``prefix`` (renderings, anything else the service
  keeps in the store) are passed through untouched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import quote

from dicom_file_service.storage.base import BlobStore
from dicom_file_service.storage.local import file_chunks
from dicom_file_service.storage.ranged_reader import RangedReader

log = logging.getLogger(__name__)

_TEMPORARY = ".part-"


class LocalCopies:
    """A ``BlobStore`` that is ``store`` with copies of its recent objects under
    ``prefix`` kept in ``directory``."""

    def __init__(
        self,
        store: BlobStore,
        directory: Path,
        *,
        capacity_bytes: int,
        max_age_seconds: float,
        prefix: str = "instances/",
        sweeper: bool = True,
    ) -> None:
        self.store = store
        self.remote = store.remote
        self.directory = directory.resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.capacity_bytes = capacity_bytes
        self.max_age_seconds = max_age_seconds
        self._prefix = prefix
        self._largest = capacity_bytes // 4
        self._added = 0  # bytes copied since the last sweep
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.sweep()  # what an earlier run left is as old as it is
        if sweeper:  # False: only ``sweep`` calls sweep (tests)
            thread = threading.Thread(target=self._sweep_loop, name="copy-sweep", daemon=True)
            thread.start()

    # -- the copies ---------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.directory / quote(key, safe="")

    def _kept(self, key: str) -> bool:
        return key.startswith(self._prefix)

    def _open_copy(self, key: str) -> int | None:
        """An open descriptor of ``key``'s copy, or None when there is none."""
        if not self._kept(key):
            return None
        try:
            return os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None

    def _temporary(self) -> Path:
        """This thread's name for a copy being made (renamed into place once whole)."""
        return self.directory / f"{_TEMPORARY}{os.getpid()}-{threading.get_ident()}"

    def _keep_file(self, key: str, path: Path) -> None:
        """Link the stored file ``path`` (the caller's, left in place) as ``key``'s copy."""
        try:
            size = path.stat().st_size
            if not self._kept(key) or size > self._largest:
                return
            temporary = self._temporary()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            os.link(path, temporary)
            os.replace(temporary, self._path(key))
        except OSError as exc:  # a copy: without it the store is read
            log.debug("no local copy kept: %s", exc.strerror)
            return
        self._added_bytes(size)

    def _keep_bytes(self, key: str, data: bytes) -> None:
        if not self._kept(key) or len(data) > self._largest:
            return
        temporary = self._temporary()
        try:
            temporary.write_bytes(data)
            os.replace(temporary, self._path(key))
        except OSError as exc:
            log.debug("no local copy kept: %s", exc.strerror)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return
        self._added_bytes(len(data))

    def _added_bytes(self, size: int) -> None:
        with self._lock:
            self._added += size
            if self._added >= self.capacity_bytes // 8:
                self._wake.set()

    def _forget(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def sweep(self) -> int:
        """Remove copies older than the age limit, then the oldest beyond the capacity or the
        disk's free tenth (and temporary files a crash left); returns how many went."""
        with self._lock:
            self._added = 0
        now = time.time()
        cutoff = now - self.max_age_seconds
        entries: list[tuple[float, int, str]] = []
        removed = 0
        for entry in os.scandir(self.directory):
            try:
                stat = entry.stat()
                temporary = entry.name.startswith(_TEMPORARY)
                if stat.st_mtime < cutoff or (temporary and stat.st_mtime < now - 3600):
                    os.unlink(entry.path)
                    removed += 1
                elif not temporary:
                    entries.append((stat.st_mtime, stat.st_size, entry.path))
            except FileNotFoundError:  # another process's sweep, or a delete
                continue
        total = sum(size for _, size, _ in entries)
        budget = min(self.capacity_bytes, total + _free_beyond_a_tenth(self.directory))
        for _, size, path in sorted(entries):
            if total <= budget:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
            total -= size
        return removed

    def _sweep_loop(self) -> None:
        while not self._closed:
            self._wake.wait(timeout=max(1.0, self.max_age_seconds / 4))
            self._wake.clear()
            if self._closed:
                return
            try:
                self.sweep()
            except OSError as exc:
                log.warning("could not sweep the local copies: %s", exc.strerror)

    def close(self) -> None:
        """Stop the sweeper (the copies stay: the next start sweeps them by age)."""
        self._closed = True
        self._wake.set()

    # -- the BlobStore ------------------------------------------------------------------

    def put_file(self, key: str, path: Path) -> None:
        self.store.put_file(key, path)
        if self.store.remote:  # the source is left in place: link it
            self._keep_file(key, path)

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        self.store.put_bytes(key, data, durable=durable)
        self._keep_bytes(key, data)

    def get_bytes(self, key: str) -> bytes:
        fd = self._open_copy(key)
        if fd is None:
            return self.store.get_bytes(key)
        return _read_all(fd)

    async def get_bytes_async(self, key: str) -> bytes:
        """A copy is read inline (a page-cache read); otherwise the store's."""
        fd = self._open_copy(key)
        if fd is None:
            return await self.store.get_bytes_async(key)
        return _read_all(fd)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        fd = self._open_copy(key)
        if fd is None:
            return self.store.read_range(key, start, end)
        return _read_range(fd, start, end)

    async def read_range_async(self, key: str, start: int, end: int) -> bytes:
        """A copy's range is read inline; otherwise the store's."""
        fd = self._open_copy(key)
        if fd is None:
            return await self.store.read_range_async(key, start, end)
        return _read_range(fd, start, end)

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 256 * 1024
    ) -> Iterator[bytes]:
        fd = self._open_copy(key)
        if fd is None:
            return self.store.iter_range(key, start, end, chunk_size)
        return file_chunks(open(fd, "rb"), start, end, chunk_size)

    def open_reader(self, key: str, size: int | None = None, head: bytes = b"") -> BinaryIO:
        """Over a copy: a reader of the open copy (never reopened by name, so a sweep
        meanwhile takes nothing from it); otherwise the store's."""
        fd = self._open_copy(key)
        if fd is None:
            return self.store.open_reader(key, size, head)
        return _CopyReader(fd, head)  # type: ignore[return-value]

    def size(self, key: str) -> int:
        if self._kept(key):
            with contextlib.suppress(OSError):
                return self._path(key).stat().st_size
        return self.store.size(key)

    def exists(self, key: str) -> bool:
        return self.at_hand(key) or self.store.exists(key)

    def at_hand(self, key: str) -> bool:
        return self._kept(key) and self._path(key).exists()

    def delete(self, key: str) -> None:
        self._forget(key)
        self.store.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        start = quote(prefix.rstrip("/") + "/", safe="")
        for entry in os.scandir(self.directory):
            if entry.name.startswith(start):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        self.store.delete_prefix(prefix)

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        return self.store.list_keys(prefix)

    def presign(self, method: Literal["GET", "PUT"], key: str, expires_in: timedelta) -> str | None:
        return self.store.presign(method, key, expires_in)

    def check(self) -> None:
        self.store.check()


def _free_beyond_a_tenth(directory: Path) -> int:
    """The bytes free on ``directory``'s disk beyond a tenth of its size (negative: short)."""
    disk = os.statvfs(directory)
    return disk.f_bavail * disk.f_frsize - disk.f_blocks * disk.f_frsize // 10


class _CopyReader(RangedReader):
    """A seekable reader over an open copy, which it closes (``head``: its first bytes, if
    read already)."""

    def __init__(self, fd: int, head: bytes = b"") -> None:
        self._fd = fd
        size = os.fstat(fd).st_size
        super().__init__(lambda start, end: os.pread(fd, end - start, start), size, head=head)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _read_range(fd: int, start: int, end: int) -> bytes:
    """Bytes ``start`` to ``end`` of an open copy, which is then closed."""
    try:
        return os.pread(fd, end - start, start) if end > start else b""
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    """The whole of an open copy, which is then closed."""
    with open(fd, "rb") as f:
        return f.read()
