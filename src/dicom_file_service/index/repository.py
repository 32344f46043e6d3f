"""Repository functions over the index. They never commit: the caller owns the transaction.

Plain functions taking a ``Connection`` keep the SQL in one place and make the transaction
boundary explicit in the service layer, the only place that orchestrates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Row, Select, delete, exists, false, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from dicom_file_service.dicom.query_keys import QueryKeys
from dicom_file_service.errors import DuplicateKey
from dicom_file_service.index import extra_keys
from dicom_file_service.index.delete_fence import note_deleted
from dicom_file_service.index.pg_insert import insert_pipelined
from dicom_file_service.index.tables import instances, series, studies


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
    warnings: tuple[str, ...] = ()  # what was odd about the file but did not stop it


_SUMMARY_COLUMNS = [getattr(instances.c, f) for f in InstanceRecord.__dataclass_fields__]


def encode_warnings(warnings: tuple[str, ...]) -> bytes | None:
    """The ``warnings`` column's value: a JSON list, NULL for none."""
    return orjson.dumps(list(warnings)) if warnings else None


def _record(row: Row[Any]) -> InstanceRecord:
    values = dict(row._mapping)
    stored = values.pop("warnings", None)
    return InstanceRecord(**values, warnings=tuple(orjson.loads(stored)) if stored else ())


def insert_instance(
    conn: Connection,
    values: dict[str, Any],
    keys: QueryKeys,
    extra: Sequence[tuple[str, str, str]] = (),
) -> int:
    """Insert one instance row (and its study's and series' rows if they are new, and its
    ``extra`` query keys' rows); return its ``seq``.

    Raises DuplicateKey on a unique-constraint conflict; the caller's transaction is then
    unusable (PostgreSQL aborts it), so the caller ends it and decides in a new one.

    The study row is written (or locked, when it exists) first, as ``delete_by_file_id``
    locks it first: an upload into a study and the delete of its last instance take turns, so
    neither leaves an instance without its study row nor a study row without instances.
    """
    values = {**values, **keys.instance}
    claims = _CLAIM[conn.dialect.name]
    if conn.dialect.name == "postgresql":  # the three statements in one round trip
        seq = insert_pipelined(conn, (claims["studies"], claims["series"]), values, keys)
    else:
        conn.execute(claims["studies"], keys.study)
        conn.execute(claims["series"], keys.series)
        try:
            result = conn.execute(_INSERT_INSTANCE, values)
        except IntegrityError as exc:
            raise DuplicateKey(str(exc.orig)) from exc
        pk = result.inserted_primary_key
        seq = int(pk[0]) if pk else 0
    extra_keys.insert_rows(conn, seq, extra)
    return seq


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


# Built once: executed with a dict of values, a statement is compiled once and cached.
_INSERT_INSTANCE = insert(instances)


def _claims(dialect: Any, update: bool) -> dict[str, Any]:
    out = {}
    for table, key in ((studies, "study_instance_uid"), (series, "series_instance_uid")):
        stmt = dialect.insert(table)
        out[table.name] = (
            # WHERE false: the existing row is locked, but no new version of it is written
            # (an update would write one, and an entry in each of the table's indexes).
            stmt.on_conflict_do_update(
                index_elements=[key], set_={key: stmt.excluded[key]}, where=false()
            )
            if update
            else stmt.on_conflict_do_nothing(index_elements=[key])
        )
    return out


# Insert the row, or lock it where it exists: PostgreSQL by an update to itself that writes
# nothing (WHERE false); SQLite has one writer anyway.
_CLAIM = {"postgresql": _claims(postgresql, update=True), "sqlite": _claims(sqlite, update=False)}


def delete_by_file_id(conn: Connection, file_id: str) -> bool:
    """Delete an instance row, and its series' and study's rows when it was their last."""
    row = conn.execute(
        select(
            instances.c.study_instance_uid, instances.c.series_instance_uid, instances.c.seq
        ).where(instances.c.file_id == file_id)
    ).first()
    if row is None:
        return False
    study, series_uid, seq = row
    conn.execute(  # the order of insert_instance: the study's row first
        select(studies.c.seq).where(studies.c.study_instance_uid == study).with_for_update()
    ).first()
    result = conn.execute(delete(instances).where(instances.c.file_id == file_id))
    note_deleted(conn)  # the transaction ends once no instance serves it from memory
    extra_keys.delete_rows(conn, [seq])  # SQLite may give a later instance the same seq
    if not conn.execute(
        select(exists().where(instances.c.series_instance_uid == series_uid))
    ).scalar():
        conn.execute(delete(series).where(series.c.series_instance_uid == series_uid))
    if not conn.execute(select(exists().where(instances.c.study_instance_uid == study))).scalar():
        conn.execute(delete(studies).where(studies.c.study_instance_uid == study))
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
) -> list[tuple[bytes, str, str, str]]:
    """The stored DICOM JSON headers of the same selection (metadata without blob reads),
    each with its study, series and SOP Instance UIDs."""
    columns = (
        instances.c.header,
        instances.c.study_instance_uid,
        instances.c.series_instance_uid,
        instances.c.sop_instance_uid,
    )
    stmt = _selected(select(*columns), study_instance_uid, series_instance_uid, sop_instance_uid)
    return [(bytes(h), a, b, c) for h, a, b, c in conn.execute(stmt)]


def _selected(stmt: Select[Any], study: str, series: str | None, sop: str | None) -> Select[Any]:
    """``stmt`` narrowed to a study, series or instance, in storage order."""
    stmt = stmt.where(instances.c.study_instance_uid == study)
    if series is not None:
        stmt = stmt.where(instances.c.series_instance_uid == series)
    if sop is not None:
        stmt = stmt.where(instances.c.sop_instance_uid == sop)
    return stmt.order_by(instances.c.seq)
