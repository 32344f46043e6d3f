"""DICOMweb (PS3.18) use cases on the same ingest, index and store as the file API.

STOW-RS stores each part through ``ingest_staged`` and reports every instance's outcome;
WADO-RS finds a study's, series' or instance's rows in the index and hands back their blobs
and stored headers (metadata never reads a blob).
"""

from __future__ import annotations

from dataclasses import dataclass

from dicom_file_service.dicom.encode import png_to_jpeg
from dicom_file_service.dicom.frames import decoded_frames, stored_frames
from dicom_file_service.dicom.header_index import with_bulk_data_base
from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.dicom.stow import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING,
    DUPLICATE_SOP_INSTANCE,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    SOP_CLASS_NOT_SUPPORTED,
    TRANSFER_SYNTAX_NOT_SUPPORTED,
    FailedInstance,
    StoredInstance,
)
from dicom_file_service.dicom.transcode import to_explicit_little_endian
from dicom_file_service.errors import (
    DuplicateInstance,
    EmptyUpload,
    FileNotFound,
    InvalidDicom,
    MissingIdentity,
    NoPixelData,
    PayloadTooLarge,
    ServiceError,
    SopClassMismatch,
    SopClassNotSupported,
    TransferSyntaxNotSupported,
    UnsupportedMediaType,
)
from dicom_file_service.index import repository as repo
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.files import delete_file
from dicom_file_service.service.ingest import ingest_staged
from dicom_file_service.service.rendering import render_blocking
from dicom_file_service.service.staging import StagedUpload
from dicom_file_service.storage import BlobNotFound


@dataclass(frozen=True)
class PartOutcome:
    stored: StoredInstance | None
    failed: FailedInstance | None
    study_instance_uid: str | None


def _reason(exc: ServiceError) -> int:
    if isinstance(exc, DuplicateInstance):
        return DUPLICATE_SOP_INSTANCE
    if isinstance(exc, SopClassMismatch):
        return DATASET_DOES_NOT_MATCH_SOP_CLASS
    if isinstance(exc, SopClassNotSupported):
        return SOP_CLASS_NOT_SUPPORTED
    if isinstance(exc, TransferSyntaxNotSupported):
        return TRANSFER_SYNTAX_NOT_SUPPORTED
    if isinstance(exc, PayloadTooLarge):
        return OUT_OF_RESOURCES
    if isinstance(exc, InvalidDicom | MissingIdentity | UnsupportedMediaType | EmptyUpload):
        return CANNOT_UNDERSTAND
    return PROCESSING_FAILURE  # what Orthanc answers for StudyMismatch too


def instance_url(base: str, study: str, series: str, sop: str) -> str:
    return f"{base}/studies/{study}/series/{series}/instances/{sop}"


def store_part(
    ctx: ServiceContext, staged: StagedUpload, *, study_instance_uid: str | None, base_url: str
) -> PartOutcome:
    """Ingest one STOW-RS part; its failure is an outcome to report, not an exception."""
    try:
        result = ingest_staged(ctx, staged, study_instance_uid=study_instance_uid, one_of_many=True)
    except ServiceError as exc:
        return failed_part(exc)
    record = result.record
    url = instance_url(
        base_url, record.study_instance_uid, record.series_instance_uid, record.sop_instance_uid
    )
    warning = "; ".join(result.warnings) or None
    stored = StoredInstance(
        record.sop_class_uid,
        record.sop_instance_uid,
        url,
        warning_reason=DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING if warning else None,
        warning=warning,
    )
    return PartOutcome(stored, None, record.study_instance_uid)


def failed_part(exc: ServiceError) -> PartOutcome:
    failed = FailedInstance(exc.sop_class_uid, exc.sop_instance_uid, _reason(exc), exc.detail)
    return PartOutcome(None, failed, None)


def find_instances(
    ctx: ServiceContext, study: str, series: str | None = None, sop: str | None = None
) -> list[repo.InstanceRecord]:
    with ctx.index.read() as conn:
        found = list(repo.instances_of(conn, study, series, sop))
    if not found:
        raise FileNotFound(_nothing(study, series, sop))
    return found


def metadata(
    ctx: ServiceContext,
    base_url: str,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> bytes:
    """The stored headers as one DICOM JSON array, from the index alone, their bulk data
    URIs on DICOMweb's routes under ``base_url``."""
    with ctx.index.read() as conn:
        headers = repo.headers_of(conn, study, series, sop)
    if not headers:
        raise FileNotFound(_nothing(study, series, sop))
    return (
        b"["
        + b",".join(
            with_bulk_data_base(header, bulk_data_base(base_url, *uids))
            for header, *uids in headers
        )
        + b"]"
    )


def bulk_data_base(base_url: str, study: str, series: str, sop: str) -> str:
    """Where DICOMweb serves an instance's bulk values (``/bulkdata/<location>``)."""
    return f"{instance_url(base_url, study, series, sop)}/bulkdata"


def _nothing(study: str, series: str | None, sop: str | None) -> str:
    if sop is not None:
        return f"no instance {sop} in series {series} of study {study}"
    if series is not None:
        return f"no series {series} in study {study}"
    return f"no study {study}"


def delete(
    ctx: ServiceContext, study: str, series: str | None = None, sop: str | None = None
) -> int:
    """Delete a study, series or instance: rows first (gone for every reader at once), then
    bytes and renderings, as ``DELETE /dicom-image/{id}`` does. Returns how many went."""
    found = find_instances(ctx, study, series, sop)
    removed = 0
    for record in found:
        try:
            delete_file(ctx, record.file_id)
        except FileNotFound:  # deleted meanwhile by someone else: gone all the same
            continue
        removed += 1
    return removed


def frames(
    ctx: ServiceContext, record: repo.InstanceRecord, numbers: list[int], *, decoded: bool
) -> list[bytes]:
    """The frames' bytes, as stored (ranged reads only) or ``decoded`` to native pixels."""
    found = ctx.index.headers.blob_location(record.file_id)
    if found is None:
        raise FileNotFound(f"instance {record.sop_instance_uid} was deleted")
    try:
        with ctx.store.open_reader(found.blob_key, found.size) as f:
            if decoded:
                limit = ctx.settings.max_decoded_pixels
                return decoded_frames(
                    f,
                    numbers,
                    max_pixels=limit,
                    max_bytes=ctx.settings.max_render_bytes,
                    frame_table=found.frame_table,
                )
            return stored_frames(f, numbers, found.frame_table)[0]
    except BlobNotFound as exc:
        raise FileNotFound(f"instance {record.sop_instance_uid} was deleted") from exc


def transcoded(ctx: ServiceContext, record: repo.InstanceRecord) -> bytes:
    """The instance in Explicit VR Little Endian (WADO-RS's default transfer syntax)."""
    try:
        with ctx.store.open_reader(record.blob_key, record.size) as f:
            return to_explicit_little_endian(f, max_bytes=ctx.settings.max_transcode_bytes)
    except BlobNotFound as exc:
        raise FileNotFound(f"instance {record.sop_instance_uid} was deleted") from exc


def rendered(
    ctx: ServiceContext,
    study: str,
    series: str,
    sop: str,
    options: RenderOptions,
    media_type: str,
    quality: int,
) -> bytes:
    """The instance (or frame) rendered for display, through the render cache (PNG); JPEG
    is made from the cached PNG."""
    record = find_instances(ctx, study, series, sop)[0]
    return _rendition(ctx, record, options, media_type, quality)


def _rendition(
    ctx: ServiceContext,
    record: repo.InstanceRecord,
    options: RenderOptions,
    media_type: str,
    quality: int,
) -> bytes:
    png = render_blocking(ctx, record.file_id, options).data
    if media_type == "image/png":
        return png
    return png_to_jpeg(png, quality=quality)


def _images(ctx: ServiceContext, study: str, series: str | None) -> list[repo.InstanceRecord]:
    """The instances of a study or series that have pixel data to show."""
    images = [r for r in find_instances(ctx, study, series) if r.number_of_frames > 0]
    if not images:
        which = f"series {series}" if series is not None else f"study {study}"
        raise NoPixelData(f"{which} has no image to show")
    return images


def representative_thumbnail(
    ctx: ServiceContext,
    study: str,
    series: str | None,
    options: RenderOptions,
    media_type: str,
    quality: int,
) -> bytes:
    """A study's or series' thumbnail: its middle image instance's (PS3.18 10.4.1.1.4)."""
    images = _images(ctx, study, series)
    return _rendition(ctx, images[len(images) // 2], options, media_type, quality)


def rendered_all(
    ctx: ServiceContext,
    study: str,
    series: str | None,
    options: RenderOptions,
    media_type: str,
    quality: int,
) -> list[bytes]:
    """Every image instance of a study or series rendered (PS3.18 10.4.1.1.3)."""
    images = _images(ctx, study, series)
    return [_rendition(ctx, r, options, media_type, quality) for r in images]


def instance_record(ctx: ServiceContext, study: str, series: str, sop: str) -> repo.InstanceRecord:
    return find_instances(ctx, study, series, sop)[0]
