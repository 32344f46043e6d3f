"""Stored instances by their UIDs, and their bytes: what WADO-RS, WADO-URI and the DICOM
network retrieve and delete, on the same rows and blobs as the file API.

Rows come from the index; bytes stream from the store by ranged reads (an iterator of chunks,
opened before it is returned, so a blob already gone is a ``FileNotFound`` before anything is
sent); metadata never reads a blob.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from dicom_file_service.dicom.encoders import DEFLATED, ImageParams
from dicom_file_service.dicom.frames import (
    stored_frames,
    stored_frames_syntax,
    transcoded_frames,
)
from dicom_file_service.dicom.header_index import with_bulk_data_base
from dicom_file_service.dicom.transcode import stored_image_params, transcode
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


def instance_by_uid(
    ctx: ServiceContext, sop: str, study: str | None = None, series: str | None = None
) -> InstanceRecord:
    """An instance by its SOP Instance UID alone, which is unique (PS3.18 9.1.2.1: WADO-URI's
    study and series are optional); a study or series given must be the instance's."""
    with ctx.index.read() as conn:
        record = repo.get_by_sop_instance_uid(conn, sop)
    if record is None or (study or record.study_instance_uid) != record.study_instance_uid:
        raise FileNotFound(_nothing(study or "?", series, sop))
    if (series or record.series_instance_uid) != record.series_instance_uid:
        raise FileNotFound(_nothing(study or record.study_instance_uid, series, sop))
    return record


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


def image_params_of(
    ctx: ServiceContext, study: str, series: str | None = None, sop: str | None = None
) -> dict[str, ImageParams]:
    """Each instance's Image Pixel attributes (by SOP Instance UID) from the headers stored at
    ingest: which syntaxes it can go in is known before any blob is read."""
    with ctx.index.read() as conn:
        headers = repo.headers_of(conn, study, series, sop)
    return {uid: stored_image_params(orjson.loads(header)) for header, _, _, uid in headers}


def transcoded(ctx: ServiceContext, record: InstanceRecord, syntax: str) -> bytes:
    """The instance in the transfer syntax ``syntax``, decoded and encoded again (up to
    ``max_transcode_bytes`` of decoded pixel data)."""
    try:
        with ctx.store.open_reader(record.blob_key, record.size) as f:
            return transcode(f, syntax, max_bytes=ctx.settings.max_transcode_bytes)
    except FileNotFound as exc:
        raise FileNotFound(f"instance {record.sop_instance_uid} was deleted") from exc


def instance_bytes(ctx: ServiceContext, record: InstanceRecord, syntax: str) -> Iterator[bytes]:
    """One instance for a retrieve in ``syntax``: its stored bytes when that is the stored
    syntax, else transcoded."""
    if syntax == record.transfer_syntax_uid:
        return stored_bytes(ctx, record)
    return iter([transcoded(ctx, record, syntax)])


def frames(
    ctx: ServiceContext, record: InstanceRecord, numbers: list[int], syntax: str
) -> list[bytes]:
    """The frames' bytes in ``syntax``: as stored (ranged reads only) when that is how they
    are stored, else decoded and, for a compressed syntax, encoded again frame by frame."""
    found = ctx.index.headers.blob_location(record.file_id)
    if found is None:
        raise FileNotFound(f"instance {record.sop_instance_uid} was deleted")
    as_stored = (
        syntax == stored_frames_syntax(record.transfer_syntax_uid)
        and record.transfer_syntax_uid != DEFLATED  # a deflated file is read whole
    )
    try:
        with ctx.store.open_reader(found.blob_key, found.size) as f:
            if as_stored:
                return stored_frames(f, numbers, found.frame_table)[0]
            return transcoded_frames(
                f,
                numbers,
                syntax,
                max_pixels=ctx.settings.max_decoded_pixels,
                max_bytes=ctx.settings.max_render_bytes,
                frame_table=found.frame_table,
            )
    except FileNotFound as exc:
        raise FileNotFound(f"instance {record.sop_instance_uid} was deleted") from exc
