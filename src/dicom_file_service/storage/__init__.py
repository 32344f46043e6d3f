"""Blob storage backends behind the ``BlobStore`` interface; ``open_blob_store`` picks one."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from dicom_file_service.storage.base import BlobNotFound, BlobStore
from dicom_file_service.storage.local import LocalBlobStore

__all__ = ["BlobNotFound", "BlobStore", "LocalBlobStore", "open_blob_store"]


def open_blob_store(url: str) -> BlobStore:
    """The backend for a storage URL: ``file:///abs/path`` (or a bare path)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme else url
        return LocalBlobStore(Path(path))
    raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r} (supported: file://)")
