"""Blob store on the local filesystem: the embedded default.

Writes go to a temporary file in ``<root>/.staging`` (same filesystem), are fsynced, then
renamed into place and the directory entry fsynced: after a crash an object is either complete
or absent, never torn. Keys map to paths below ``<root>/objects``; the service shards them
(``instances/ab/<id>``) so no directory grows without bound, and names the shard directories
up front (``prefixes``) so that they are created, durably, once rather than by uploads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Literal

from dicom_file_service.errors import InsufficientStorage, StorageUnavailable
from dicom_file_service.storage.base import BlobNotFound
from dicom_file_service.storage.scratch import ScratchArea

_STAGING = ".staging"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """A ``BlobStore`` whose objects are files below ``root``."""

    remote = False  # put_file renames the staged file into place

    def __init__(
        self, root: Path, *, prefixes: list[str] | None = None, fsync: bool = True
    ) -> None:
        self.root = root.resolve()
        self._objects = self.root / "objects"
        self._staging = self.root / _STAGING
        self._fsync = fsync
        self._objects.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[Path] = set()
        self._prepare_prefixes(prefixes or [])
        # Temporary files of writes that a crash interrupted (never visible under a key).
        ScratchArea(self._staging).sweep(older_than_seconds=3600)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or key.startswith(_STAGING):
            raise ValueError(f"invalid blob key {key!r}")
        return self._objects.joinpath(*parts)

    def _ensure_parent(self, target: Path, *, durable: bool = True) -> None:
        """Create the object's directory if need be, durably for a durable write.

        Only the prepared prefixes (a fixed set) are remembered; any other directory is
        checked each time, since ``delete_prefix`` may remove it and remembering every one
        would grow without bound. A durable write fsyncs the directory chain even when
        another thread created it: that thread's fsync may not have happened yet.
        """
        parent = target.parent
        if parent in self._known_dirs:
            return
        parent.mkdir(parents=True, exist_ok=True)
        if durable and self._fsync:
            p = parent
            while p != self._objects:
                _fsync_dir(p.parent)
                p = p.parent

    def put_file(self, key: str, path: Path) -> None:
        try:
            self._put_file(key, path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            full = InsufficientStorage.from_os_error(exc, "the blob store's disk")
            raise full or StorageUnavailable(
                f"cannot write to the blob store: {exc.strerror}"
            ) from exc

    def _put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        self._ensure_parent(target)
        if self._fsync:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        try:
            # Asked of the rename itself, not of paths and devices first (resolving the
            # path and two stats were 30 µs an upload): the same filesystem renames.
            os.replace(path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            self._copy_in(path, target)
        if self._fsync:
            _fsync_dir(target.parent)

    def _copy_in(self, path: Path, target: Path) -> None:
        """From another filesystem: copied into staging first, so the final rename stays
        atomic; a copy that fails leaves nothing behind."""
        staged = self._staging / f"copy-{os.getpid()}-{time.monotonic_ns()}"
        try:
            shutil.copyfile(path, staged)
            if self._fsync:
                with open(staged, "rb+") as f:
                    os.fsync(f.fileno())
            os.replace(staged, target)
        except BaseException:
            staged.unlink(missing_ok=True)  # the half copy goes with the failure
            raise
        path.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        try:
            self._put_bytes(key, data, durable=durable and self._fsync)
        except OSError as exc:
            full = InsufficientStorage.from_os_error(exc, "the blob store's disk")
            raise full or StorageUnavailable(
                f"cannot write to the blob store: {exc.strerror}"
            ) from exc

    def _put_bytes(self, key: str, data: bytes, *, durable: bool) -> None:
        target = self._path(key)
        self._ensure_parent(target, durable=durable)
        fd, tmp = tempfile.mkstemp(dir=self._staging, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if durable:
            _fsync_dir(target.parent)

    def open_reader(self, key: str, size: int | None = None, head: bytes = b"") -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    async def get_bytes_async(self, key: str) -> bytes:
        """A local read of a small object: cheaper inline than a hop to a thread."""
        return self.get_bytes(key)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        with self.open_reader(key) as f:
            f.seek(start)
            return f.read(max(0, end - start))

    async def read_range_async(self, key: str, start: int, end: int) -> bytes:
        """A local read: inline, as ``get_bytes_async``."""
        return self.read_range(key, start, end)

    def presign(self, method: Literal["GET", "PUT"], key: str, expires_in: timedelta) -> str | None:
        return None  # no server of its own: the service signs URLs to itself

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 256 * 1024
    ) -> Iterator[bytes]:
        return file_chunks(self.open_reader(key), start, end, chunk_size)

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def at_hand(self, key: str) -> bool:
        return self.exists(key)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def delete_prefix(self, prefix: str) -> None:
        target = self._path(prefix.rstrip("/"))
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)

    def file_of(self, key: str) -> Path:
        """Where the object lies on disk (for tests that break a stored file on purpose)."""
        return self._path(key)

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        top = self._path(prefix.rstrip("/"))
        for root, _dirs, names in os.walk(top):
            for name in names:
                path = Path(root) / name
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield path.relative_to(self._objects).as_posix(), mtime

    def _prepare_prefixes(self, prefixes: list[str]) -> None:
        parents: set[Path] = set()
        for prefix in prefixes:
            directory = self._path(prefix)
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
                parents.add(directory.parent)
            self._known_dirs.add(directory)
        if self._fsync:
            for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
                p = parent
                while p != self._objects.parent:
                    _fsync_dir(p)
                    p = p.parent

    def check(self) -> None:
        if not os.access(self._objects, os.W_OK) or not os.access(self._staging, os.W_OK):
            raise OSError(f"blob store at {self.root} is not writable")

    def close(self) -> None:
        """Nothing runs in the background."""


def file_chunks(f: BinaryIO, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` of the open file ``f`` (None: to its end) in chunks; ``f``
    is closed once they are read (an open handle keeps its bytes from a racing unlink)."""
    with f:
        f.seek(start)
        remaining = None if end is None else end - start
        while remaining is None or remaining > 0:
            n = chunk_size if remaining is None else min(chunk_size, remaining)
            chunk = f.read(n)
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
