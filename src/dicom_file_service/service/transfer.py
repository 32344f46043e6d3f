"""Direct transfer (README, "Usage"): clients move bytes straight to and from storage.

An upload URL names an object under ``uploads/<upload_id>`` in the blob store. On S3 it is a
presigned PUT to the bucket itself; on the local backend a URL to the service, signed by it
(``service.signing``), whose PUT streams the body into the store. Completing the upload copies
the object into the scratch area and ingests it exactly like ``POST /dicom-image`` (same
checks, duplicate rules and answer); the uploaded object is then removed, whether it was
stored or refused. Objects never completed are removed by ``sweep`` after the pending-upload TTL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dicom_file_service.errors import (
    BadRequest,
    DuplicateInstance,
    PayloadTooLarge,
    UploadNotFound,
)
from dicom_file_service.service import ids
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.files import get_record
from dicom_file_service.service.ingest import ingest_staged
from dicom_file_service.service.records import IngestResult
from dicom_file_service.service.signing import sign, signing_key
from dicom_file_service.service.staging import StagedUpload
from dicom_file_service.storage import BlobNotFound

UPLOADS = "uploads"
SIGNED_UPLOAD_PATH = "/signed/uploads/{upload_id}"
SIGNED_FILE_PATH = "/signed/files/{file_id}"


def upload_key(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}"


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: str  # ISO 8601, UTC


def _expiry(ctx: ServiceContext) -> tuple[timedelta, str]:
    seconds = ctx.settings.presign_expiry_seconds
    at = datetime.fromtimestamp(int(time.time()) + seconds, UTC)
    return timedelta(seconds=seconds), at.isoformat().replace("+00:00", "Z")


def _own_url(ctx: ServiceContext, base_url: str, method: str, path: str) -> SignedUrl:
    query, expires = sign(
        signing_key(ctx.settings), method, path, ctx.settings.presign_expiry_seconds
    )
    at = datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
    base = (ctx.settings.public_base_url or base_url).rstrip("/")
    return SignedUrl(url=f"{base}{path}?{query}", expires_at=at)


def create_upload(ctx: ServiceContext, base_url: str) -> dict[str, Any]:
    """A new upload: its id, where to PUT the bytes, until when, and with which headers."""
    upload_id = ids.new_file_id()
    lifetime, expires_at = _expiry(ctx)
    presigned = ctx.store.presign("PUT", upload_key(upload_id), lifetime)
    if presigned is not None:
        url = SignedUrl(presigned, expires_at)
    else:
        url = _own_url(ctx, base_url, "PUT", SIGNED_UPLOAD_PATH.format(upload_id=upload_id))
    return {
        "upload_id": upload_id,
        "upload_url": url.url,
        "expires_at": url.expires_at,
        "headers": {},  # nothing is signed but the host: Content-Type is free
        "complete_url": f"/dicom-image/uploads/{upload_id}/complete",
    }


def receive_upload(ctx: ServiceContext, upload_id: str, staged: StagedUpload) -> None:
    """The local backend's signed PUT: keep the received bytes as the upload's object."""
    staged.finish()
    ctx.store.put_file(upload_key(upload_id), staged.path)


def complete_upload(ctx: ServiceContext, upload_id: str, *, overwrite: bool) -> IngestResult:
    """Validate and index the uploaded object like ``POST /dicom-image``; remove it after."""
    if not ids.is_valid_file_id(upload_id):
        raise _no_upload(upload_id)
    key = upload_key(upload_id)
    try:
        size = ctx.store.size(key)
    except BlobNotFound as exc:
        raise _no_upload(upload_id) from exc
    limit = ctx.settings.max_upload_bytes
    if size > limit:  # a presigned PUT cannot be limited: refuse before fetching it
        ctx.store.delete(key)
        raise PayloadTooLarge(
            f"the upload ({size} bytes) exceeds the limit of {limit} bytes "
            "(setting DICOM_FS_MAX_UPLOAD_BYTES); it was removed"
        )
    try:
        with StagedUpload(ctx.scratch, limit) as staged:
            try:
                for chunk in ctx.store.iter_range(key, chunk_size=8 * 1024 * 1024):
                    staged.write(chunk)
            except BlobNotFound as exc:
                raise _no_upload(upload_id) from exc
            result = ingest_staged(ctx, staged, overwrite=overwrite)
    except (BadRequest, DuplicateInstance):
        ctx.store.delete(key)  # refused for what it is: the client is told why
        raise
    # An outage (503) keeps the bytes: completing again retries; sweep removes them in time.
    ctx.store.delete(key)
    return result


def _no_upload(upload_id: str) -> UploadNotFound:
    return UploadNotFound(
        f"no uploaded bytes for upload {upload_id!r}: PUT the file to its upload_url first "
        "(an upload not completed within the pending-upload TTL is removed)"
    )


def download_url(ctx: ServiceContext, file_id: str, base_url: str) -> SignedUrl:
    """A URL that GETs the stored bytes without going through this service where possible."""
    record = get_record(ctx, file_id)
    lifetime, expires_at = _expiry(ctx)
    presigned = ctx.store.presign("GET", record.blob_key, lifetime)
    if presigned is not None:
        return SignedUrl(presigned, expires_at)
    return _own_url(ctx, base_url, "GET", SIGNED_FILE_PATH.format(file_id=file_id))
