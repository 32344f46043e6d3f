"""Stored instances by their UIDs, and their bytes: what WADO-RS, WADO-URI and the DICOM
network retrieve and delete, on the same rows and blobs as the file API.

Rows come from the index; bytes stream from the store by ranged reads (an iterator of chunks,
opened before it is returned, so a blob already gone is a ``FileNotFound`` before anything is
sent); metadata never reads a blob.
"""

from __future__ import annotations

from collections.abc import Iterator

from dicom_file_service.dicom.frames import decoded_frames, stored_frames
from dicom_file_service.dicom.header_index import with_bulk_data_base
from dicom_file_service.dicom.transcode import to_explicit_little_endian
from dicom_file_service.errors import FileNotFound
from dicom_file_service.index import repository as repo
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.files import delete_file, not_found
from dicom_file_service.service.locations import ResourceUrls
from dicom_file_service.service.records import InstanceRecord


def find_instances(
    ctx: ServiceContext, study: str, series: str | None = None, sop: str | None = None
) -> list[InstanceRecord]:
    """The study's, series' or instance's rows, in the index's order; none is a 404."""
    with ctx.index.read() as conn:
        found = list(repo.instances_of(conn, study, series, sop))
    if not found:
        raise FileNotFound(_nothing(study, series, sop))
    return found


def instance_record(ctx: ServiceContext, study: str, series: str, sop: str) -> InstanceRecord:
    return find_instances(ctx, study, series, sop)[0]


def _nothing(study: str, series: str | None, sop: str | None) -> str:
    if sop is not None:
        return f"no instance {sop} in series {series} of study {study}"
    if series is not None:
        return f"no series {series} in study {study}"
    return f"no study {study}"


def metadata(
    ctx: ServiceContext,
    urls: ResourceUrls,
    study: str,
    series: str | None = None,
    sop: str | None = None,
) -> bytes:
    """The stored headers as one DICOM JSON array, from the index alone, each one's bulk data
    URIs under its instance's bulk data root."""
    with ctx.index.read() as conn:
        headers = repo.headers_of(conn, study, series, sop)
    if not headers:
        raise FileNotFound(_nothing(study, series, sop))
    return (
        b"["
        + b",".join(
            with_bulk_data_base(header, urls.bulk_data_base(*uids)) for header, *uids in headers
        )
        + b"]"
    )


def delete(
    ctx: ServiceContext, study: str, series: str | None = None, sop: str | None = None
) -> int:
    """Delete a study, series or instance: rows first (gone for every reader at once), then
    bytes and renderings, as deleting a file does. Returns how many went."""
    removed = 0
    for record in find_instances(ctx, study, series, sop):
        try:
            delete_file(ctx, record.file_id)
        except FileNotFound:  # deleted meanwhile by someone else: gone all the same
            continue
        removed += 1
    return removed


def stored_bytes(
    ctx: ServiceContext, record: InstanceRecord, start: int = 0, end: int | None = None
) -> Iterator[bytes]:
    """The stored file's bytes ``[start, end)``, streamed; a blob gone is a 404 now."""
    try:
        return ctx.store.iter_range(record.blob_key, start, end)
    except FileNotFound as exc:  # deleted meanwhile, or lost by the store
        raise not_found(record.file_id) from exc


def check_stored(ctx: ServiceContext, record: InstanceRecord) -> None:
    """Raise ``FileNotFound`` unless the stored file's bytes are there (``HEAD``)."""
    try:
        ctx.store.size(record.blob_key)
    except FileNotFound as exc:
        raise not_found(record.file_id) from exc


def transcoded(ctx: ServiceContext, record: InstanceRecord) -> bytes:
    """The instance in Explicit VR Little Endian (WADO-RS's default transfer syntax)."""
    try:
        with ctx.store.open_reader(record.blob_key, record.size) as f:
            return to_explicit_little_endian(f, max_bytes=ctx.settings.max_transcode_bytes)
    except FileNotFound as exc:
        raise FileNotFound(f"instance {record.sop_instance_uid} was deleted") from exc


def instance_bytes(
    ctx: ServiceContext, record: InstanceRecord, *, as_stored: bool
) -> Iterator[bytes]:
    """One instance for a retrieve: its stored bytes, or transcoded (decoded and made
    Explicit VR Little Endian, up to ``max_transcode_bytes``)."""
    if as_stored:
        return stored_bytes(ctx, record)
    return iter([transcoded(ctx, record)])


def frames(
    ctx: ServiceContext, record: InstanceRecord, numbers: list[int], *, decoded: bool
) -> list[bytes]:
    """The frames' bytes, as stored (ranged reads only) or ``decoded`` to native pixels."""
    found = ctx.index.headers.blob_location(record.file_id)
    if found is None:
        raise FileNotFound(f"instance {record.sop_instance_uid} was deleted")
    try:
        with ctx.store.open_reader(found.blob_key, found.size) as f:
            if decoded:
                return decoded_frames(
                    f,
                    numbers,
                    max_pixels=ctx.settings.max_decoded_pixels,
                    max_bytes=ctx.settings.max_render_bytes,
                    frame_table=found.frame_table,
                )
            return stored_frames(f, numbers, found.frame_table)[0]
    except FileNotFound as exc:
        raise FileNotFound(f"instance {record.sop_instance_uid} was deleted") from exc
