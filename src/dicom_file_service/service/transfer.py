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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dicom_file_service.errors import (
    BadRequest,
    DuplicateInstance,
    FileNotFound,
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

UPLOADS = "uploads"


def upload_key(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}"


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: str  # ISO 8601, UTC


@dataclass(frozen=True)
class OwnRoutes:
    """Where the service's own signed transfer routes are, for a store that cannot sign
    (the local disk): the root clients reach the service at, and the path (which the
    signature covers) of the PUT of an upload and of the GET of a file."""

    base_url: str
    upload_path: Callable[[str], str]
    file_path: Callable[[str], str]


@dataclass(frozen=True)
class NewUpload:
    upload_id: str
    url: SignedUrl


def _expiry(ctx: ServiceContext) -> tuple[timedelta, str]:
    seconds = ctx.settings.presign_expiry_seconds
    at = datetime.fromtimestamp(int(time.time()) + seconds, UTC)
    return timedelta(seconds=seconds), at.isoformat().replace("+00:00", "Z")


def _own_url(ctx: ServiceContext, base_url: str, method: str, path: str) -> SignedUrl:
    query, expires = sign(
        signing_key(ctx.settings), method, path, ctx.settings.presign_expiry_seconds
    )
    at = datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
    return SignedUrl(url=f"{base_url}{path}?{query}", expires_at=at)


def create_upload(ctx: ServiceContext, routes: OwnRoutes) -> NewUpload:
    """A new upload: its id, and where to PUT the bytes until when (nothing is signed but
    the host: Content-Type is free)."""
    upload_id = ids.new_file_id()
    lifetime, expires_at = _expiry(ctx)
    presigned = ctx.store.presign("PUT", upload_key(upload_id), lifetime)
    if presigned is not None:
        return NewUpload(upload_id, SignedUrl(presigned, expires_at))
    return NewUpload(
        upload_id, _own_url(ctx, routes.base_url, "PUT", routes.upload_path(upload_id))
    )


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
    except FileNotFound as exc:
        raise _no_upload(upload_id) from exc
    limit = ctx.settings.max_upload_bytes
    if size > limit:  # a presigned PUT cannot be limited: refuse before fetching it
        ctx.store.delete(key)
        raise PayloadTooLarge(
            f"the upload ({size} bytes) exceeds the limit of {limit} bytes "
            "(setting DICOM_FS_MAX_UPLOAD_BYTES); it was removed"
        )
    try:
        with ctx.new_upload() as staged:
            try:
                for chunk in ctx.store.iter_range(key, chunk_size=8 * 1024 * 1024):
                    staged.write(chunk)
            except FileNotFound as exc:
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


def download_url(ctx: ServiceContext, file_id: str, routes: OwnRoutes) -> SignedUrl:
    """A URL that GETs the stored bytes without going through this service where possible."""
    record = get_record(ctx, file_id)
    lifetime, expires_at = _expiry(ctx)
    presigned = ctx.store.presign("GET", record.blob_key, lifetime)
    if presigned is not None:
        return SignedUrl(presigned, expires_at)
    return _own_url(ctx, routes.base_url, "GET", routes.file_path(file_id))
