"""An upload in progress: bytes streamed to a staging file, hashed and counted as they come.

Nothing is held whole in memory; the size limit is enforced while streaming so an oversized
upload stops at the limit, not after filling the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from types import TracebackType

from dicom_file_service.errors import PayloadTooLarge
from dicom_file_service.storage import ScratchArea
from dicom_file_service.storage.scratch import scratch_error

WRITEBACK_BYTES = 32 * 1024 * 1024
"""A large upload asks the kernel to start writing it back every this many bytes."""


class StagedUpload:
    """A file in the scratch area. Discarded unless consumed."""

    def __init__(self, scratch: ScratchArea, max_bytes: int) -> None:
        fd, self.path = scratch.new_file()
        self._file = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self.size = 0
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self._closed = False
        self._written_back = 0

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self._max:
            raise PayloadTooLarge(
                f"the upload exceeds the limit of {self._max} bytes "
                "(setting DICOM_FS_MAX_UPLOAD_BYTES)"
            )
        self._hash.update(chunk)
        try:
            self._file.write(chunk)
            if self.size - self._written_back >= WRITEBACK_BYTES:
                self._start_writeback()
        except OSError as exc:
            raise scratch_error(exc) from exc

    def _start_writeback(self) -> None:
        """Have the kernel start writing what has arrived so far, without waiting for it: a
        large upload's final fsync then finds most of it on disk already, instead of
        writing it all after the last byte arrived."""
        self._file.flush()
        os.posix_fadvise(
            self._file.fileno(),
            self._written_back,
            self.size - self._written_back,
            os.POSIX_FADV_DONTNEED,
        )
        self._written_back = self.size

    def finish(self) -> str:
        """Close the file; returns the SHA-256 of what was written."""
        if not self._closed:
            self._closed = True
            try:
                self._file.close()  # flushes the last buffered bytes: the disk may be full
            except OSError as exc:
                raise scratch_error(exc) from exc
        return self._hash.hexdigest()

    def discard(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):  # a full disk cannot take the last bytes
                self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> StagedUpload:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever happened, the staging file never outlives the request: it is either moved
        # into the store (then unlinking is a no-op) or it goes.
        self.discard()
