"""Study and series rows and the instance number, for QIDO-RS; filled from stored headers.

Instances stored before this migration get their study and series rows and instance number
from their stored header (DICOM JSON), by ``dicom.query_keys`` as ingest used it at this
revision, so a query finds them exactly as it finds new ones. The tables, and that code, are
copied here as they are at this revision, not imported, so that later changes to the schema or
to ``query_keys`` never change this migration.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import unicodedata
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCH = 500
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KEY = sa.String(256)

_STUDY_KEYS = [
    "patient_name",
    "patient_name_fuzzy",
    "patient_id",
    "study_date",
    "study_time",
    "study_datetime",
    "accession_number",
    "referring_physician_name",
    "referring_physician_name_fuzzy",
    "study_id",
    "study_description",
]
_SERIES_KEYS = [
    "modality",
    "series_description",
    "performed_procedure_step_start_date",
    "performed_procedure_step_start_time",
    "scheduled_procedure_step_ids",
    "requested_procedure_ids",
]


def upgrade() -> None:
    studies = op.create_table(
        "studies",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("study_instance_uid", sa.String(64), nullable=False, unique=True),
        *(sa.Column(name, _KEY) for name in _STUDY_KEYS),
    )
    for name in ("patient_name", "patient_name_fuzzy", "patient_id", "study_date"):
        op.create_index(f"ix_studies_{name}", "studies", [name])
    op.create_index("ix_studies_study_datetime", "studies", ["study_datetime"])
    op.create_index("ix_studies_accession_number", "studies", ["accession_number"])
    series = op.create_table(
        "series",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("series_instance_uid", sa.String(64), nullable=False, unique=True),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("series_number", sa.BigInteger()),
        *(sa.Column(name, _KEY) for name in _SERIES_KEYS),
    )
    op.create_index("ix_series_study", "series", ["study_instance_uid"])
    op.create_index("ix_series_modality", "series", ["modality"])
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("instance_number", sa.BigInteger(), nullable=True))
    _backfill(op.get_bind(), studies, series)


def _backfill(conn: sa.Connection, studies: sa.Table, series: sa.Table) -> None:
    instances = sa.table(
        "instances",
        sa.column("seq", sa.BigInteger()),
        sa.column("header", sa.LargeBinary()),
        sa.column("instance_number", sa.BigInteger()),
    )
    last = -1
    while True:
        rows = conn.execute(
            sa.select(instances.c.seq, instances.c.header)
            .where(instances.c.seq > last)
            .order_by(instances.c.seq)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        for seq, header in rows:
            study_keys, series_keys, instance_keys = _query_keys(orjson.loads(header))
            conn.execute(_insert_new(conn, studies, study_keys, "study_instance_uid"))
            conn.execute(_insert_new(conn, series, series_keys, "series_instance_uid"))
            conn.execute(
                sa.update(instances)
                .where(instances.c.seq == seq)
                .values(instance_number=instance_keys["instance_number"])
            )
        last = rows[-1][0]


def _insert_new(conn: sa.Connection, table: sa.Table, values: dict[str, Any], key: str) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])


# ``dicom.query_keys`` as it was at this revision (frozen: never import the package here).
_MAX_KEY = 256
_INT_RANGE = 2**53


def _query_keys(
    header: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The study, series and instance rows' values for one stored header."""
    study_date = _text(header, "00080020")
    study_time = _time_key(_text(header, "00080030") or "")
    study = {
        "study_instance_uid": _text(header, "0020000D"),
        "patient_name": _pn(header, "00100010", fuzzy=False),
        "patient_name_fuzzy": _pn(header, "00100010", fuzzy=True),
        "patient_id": _text(header, "00100020"),
        "study_date": study_date,
        "study_time": study_time,
        "study_datetime": (study_date + (study_time or "000000.000000")) if study_date else None,
        "accession_number": _text(header, "00080050"),
        "referring_physician_name": _pn(header, "00080090", fuzzy=False),
        "referring_physician_name_fuzzy": _pn(header, "00080090", fuzzy=True),
        "study_id": _text(header, "00200010"),
        "study_description": _text(header, "00081030"),
    }
    requests = _items(header, "00400275")
    series = {
        "series_instance_uid": _text(header, "0020000E"),
        "study_instance_uid": study["study_instance_uid"],
        "modality": _text(header, "00080060"),
        "series_number": _int(header, "00200011"),
        "series_description": _text(header, "0008103E"),
        "performed_procedure_step_start_date": _text(header, "00400244"),
        "performed_procedure_step_start_time": _time_key(_text(header, "00400245") or ""),
        "scheduled_procedure_step_ids": _joined(_text(item, "00400009") for item in requests),
        "requested_procedure_ids": _joined(_text(item, "00401001") for item in requests),
    }
    instance = {"instance_number": _int(header, "00200013")}
    return study, series, instance


def _pn_key(value: str, *, fuzzy: bool) -> str:
    groups = [g.rstrip("^ ").strip() for g in value.split("=")]
    while groups and not groups[-1]:
        groups.pop()
    text = "=".join(groups)
    if fuzzy:
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return text.upper()


def _time_key(value: str) -> str | None:
    text = value.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if (
        not whole.isdigit()
        or len(whole) not in (2, 4, 6)
        or not (fraction.isdigit() or not fraction)
    ):
        return None
    if len(fraction) > 6:
        return None
    whole += "0000"[: 6 - len(whole)]
    return f"{whole}.{fraction.ljust(6, '0')}"


def _values(header: dict[str, Any], key: str) -> list[Any]:
    element = header.get(key)
    if not isinstance(element, dict):
        return []
    values = element.get("Value")
    return values if isinstance(values, list) else []


def _text(header: dict[str, Any], key: str) -> str | None:
    values = [str(v).strip() for v in _values(header, key) if v is not None]
    text = "\\".join(v for v in values if v)
    return text[:_MAX_KEY] if text else None


def _int(header: dict[str, Any], key: str) -> int | None:
    values = _values(header, key)
    try:
        number = int(str(values[0]).strip()) if values else None
    except ValueError:
        return None
    return number if number is not None and abs(number) < _INT_RANGE else None


def _pn(header: dict[str, Any], key: str, *, fuzzy: bool) -> str | None:
    names = []
    for value in _values(header, key):
        if isinstance(value, dict):
            groups = [str(value.get(g, "")) for g in ("Alphabetic", "Ideographic", "Phonetic")]
            names.append(_pn_key("=".join(groups), fuzzy=fuzzy))
    text = "\\".join(n for n in names if n)
    return text[:_MAX_KEY] if text else None


def _items(header: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [item for item in _values(header, key) if isinstance(item, dict)]


def _joined(values: Any) -> str | None:
    present = [v for v in values if v]
    if not present:
        return None
    text = "\\" + "\\".join(present) + "\\"
    return text[:_MAX_KEY]


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("instance_number")
    op.drop_table("series")
    op.drop_table("studies")
