"""Repository functions over the index. They never commit: the caller owns the transaction.

Plain functions taking a ``Connection`` keep the SQL in one place and make the transaction
boundary explicit in the service layer, the only place that orchestrates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, delete, insert, select
from sqlalchemy.exc import IntegrityError

from dicom_file_service.index.tables import instances


@dataclass(frozen=True)
class InstanceRecord:
    """An index row without the (large) header columns."""

    seq: int
    file_id: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    patient_id: str | None
    patient_name: str | None
    modality: str | None
    study_date: str | None
    number_of_frames: int
    size: int
    sha256: str
    blob_key: str
    created_at: float


class DuplicateKey(Exception):
    """An insert hit a unique constraint (the SOP Instance UID is already stored)."""


_SUMMARY_COLUMNS = [getattr(instances.c, f) for f in InstanceRecord.__dataclass_fields__]


def _record(row: Row[Any]) -> InstanceRecord:
    return InstanceRecord(**row._mapping)


def insert_instance(conn: Connection, values: dict[str, Any]) -> int:
    """Insert one instance row and return its ``seq``.

    Raises DuplicateKey on a unique-constraint conflict; the caller's transaction is then
    unusable (PostgreSQL aborts it), so the caller ends it and decides in a new one.
    """
    try:
        result = conn.execute(insert(instances).values(**values))
    except IntegrityError as exc:
        raise DuplicateKey(str(exc.orig)) from exc
    pk = result.inserted_primary_key
    return int(pk[0]) if pk else 0


def get_by_file_id(conn: Connection, file_id: str) -> InstanceRecord | None:
    row = conn.execute(select(*_SUMMARY_COLUMNS).where(instances.c.file_id == file_id)).first()
    return _record(row) if row else None


def get_by_sop_instance_uid(conn: Connection, sop_instance_uid: str) -> InstanceRecord | None:
    row = conn.execute(
        select(*_SUMMARY_COLUMNS).where(instances.c.sop_instance_uid == sop_instance_uid)
    ).first()
    return _record(row) if row else None


def referenced_blob_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` an index row refers to."""
    stmt = select(instances.c.blob_key).where(instances.c.blob_key.in_(list(keys)))
    return set(conn.execute(stmt).scalars())


def delete_by_file_id(conn: Connection, file_id: str) -> bool:
    result = conn.execute(delete(instances).where(instances.c.file_id == file_id))
    return bool(result.rowcount)


_FILTERS = ("patient_id", "study_instance_uid", "series_instance_uid", "modality")


def list_instances(
    conn: Connection,
    *,
    limit: int,
    before_seq: int | None = None,
    filters: dict[str, str] | None = None,
) -> Sequence[InstanceRecord]:
    """Newest first, keyset-paginated on ``seq`` (stable under concurrent inserts)."""
    stmt = select(*_SUMMARY_COLUMNS).order_by(instances.c.seq.desc()).limit(limit)
    if before_seq is not None:
        stmt = stmt.where(instances.c.seq < before_seq)
    for name, value in (filters or {}).items():
        if name not in _FILTERS:
            raise ValueError(f"unknown filter {name!r}")
        stmt = stmt.where(getattr(instances.c, name) == value)
    return [_record(r) for r in conn.execute(stmt)]


def instances_of(
    conn: Connection,
    study_instance_uid: str,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> Sequence[InstanceRecord]:
    """The instances of a study (or of one series, or one instance), in storage order."""
    stmt = _selected(
        select(*_SUMMARY_COLUMNS), study_instance_uid, series_instance_uid, sop_instance_uid
    )
    return [_record(r) for r in conn.execute(stmt)]


def headers_of(
    conn: Connection,
    study_instance_uid: str,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> list[bytes]:
    """The stored DICOM JSON headers of the same selection (metadata without blob reads)."""
    stmt = _selected(
        select(instances.c.header), study_instance_uid, series_instance_uid, sop_instance_uid
    )
    return [bytes(h) for h in conn.execute(stmt).scalars()]


def _selected(stmt: Select[Any], study: str, series: str | None, sop: str | None) -> Select[Any]:
    """``stmt`` narrowed to a study, series or instance, in storage order."""
    stmt = stmt.where(instances.c.study_instance_uid == study)
    if series is not None:
        stmt = stmt.where(instances.c.series_instance_uid == series)
    if sop is not None:
        stmt = stmt.where(instances.c.sop_instance_uid == sop)
    return stmt.order_by(instances.c.seq)
