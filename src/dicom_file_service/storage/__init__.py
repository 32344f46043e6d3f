"""Blob storage backends behind the ``BlobStore`` interface; ``open_blob_store`` picks one.

Choosing a backend is configuration: ``file:///path`` (or a bare path) is the local disk,
``s3://bucket/prefix`` an S3-compatible object store.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from dicom_file_service.settings import Settings
from dicom_file_service.storage.base import BlobNotFound, BlobStore
from dicom_file_service.storage.local import LocalBlobStore
from dicom_file_service.storage.local_copies import LocalCopies
from dicom_file_service.storage.render_cache import BlobRenderCache, MemoryRenderCache, RenderCache
from dicom_file_service.storage.s3 import S3BlobStore, S3Config
from dicom_file_service.storage.scratch import ScratchArea

__all__ = [
    "BlobNotFound",
    "BlobRenderCache",
    "BlobStore",
    "LocalBlobStore",
    "LocalCopies",
    "MemoryRenderCache",
    "RenderCache",
    "S3BlobStore",
    "ScratchArea",
    "open_blob_store",
]


def open_blob_store(settings: Settings, *, local_prefixes: list[str] | None = None) -> BlobStore:
    """The backend the settings' storage URL names. ``local_prefixes`` are the key prefixes
    a local store creates up front (an object store has no directories to create). An
    object store comes with the instance's copies of recent files (``LocalCopies``) unless
    the settings keep none."""
    url = settings.resolved_storage_url()
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme else url
        return LocalBlobStore(Path(path), prefixes=local_prefixes)
    if parsed.scheme == "s3":
        secret = settings.aws_secret_access_key
        store = S3BlobStore(
            S3Config.from_url(
                url,
                endpoint_url=settings.aws_endpoint_url,
                access_key_id=settings.aws_access_key_id,
                secret_access_key=secret.get_secret_value() if secret else None,
                region=settings.aws_region,
                timeout_seconds=settings.s3_timeout_seconds,
                presign_endpoint_url=settings.s3_presign_endpoint_url,
            )
        )
        if settings.local_copy_bytes == 0:
            return store
        return LocalCopies(
            store,
            settings.resolved_scratch_dir() / "copies",
            capacity_bytes=settings.local_copy_bytes,
            max_age_seconds=settings.local_copy_seconds,
        )
    raise ValueError(
        f"unsupported storage URL scheme {parsed.scheme!r} (supported: file://, s3://)"
    )
