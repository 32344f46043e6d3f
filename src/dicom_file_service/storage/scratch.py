"""The scratch area: a local directory for uploads in progress.

Not part of any blob store: an upload is streamed here, parsed and validated from here, and
only then put into the store (moved, on the local backend; uploaded, on S3). Nothing here is
ever acknowledged, so the directory is safe to lose; files older than the pending-upload TTL
are abandoned uploads and are swept.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from dicom_file_service.errors import InsufficientStorage, ServiceError, StorageUnavailable


def scratch_error(exc: OSError) -> ServiceError:
    """A failure of the scratch area's disk as the client should hear it: 507 when full."""
    return InsufficientStorage.from_os_error(exc, "the disk for uploads in progress") or (
        StorageUnavailable(f"cannot write an upload in progress: {exc.strerror}")
    )


class ScratchArea:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.directory.mkdir(parents=True, exist_ok=True)

    def new_file(self, prefix: str = "upload-", suffix: str = ".dcm") -> tuple[int, Path]:
        """An open, empty file of our own: (file descriptor, path)."""
        try:
            fd, name = tempfile.mkstemp(dir=self.directory, prefix=prefix, suffix=suffix)
        except OSError as exc:
            raise scratch_error(exc) from exc
        return fd, Path(name)

    def sweep(self, older_than_seconds: float) -> int:
        """Remove files not touched for ``older_than_seconds``; returns how many went."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in os.scandir(self.directory):
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
