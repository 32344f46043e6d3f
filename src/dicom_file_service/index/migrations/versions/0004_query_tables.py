"""Study and series rows and the instance number, for QIDO-RS; filled from stored headers.

Instances stored before this migration get their study and series rows and instance number
from their stored header (DICOM JSON), by the same ``query_keys`` that ingest uses, so a query
finds them exactly as it finds new ones. The tables are declared here as they are at this
revision, not imported, so that later changes to the schema never change this migration.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

from dicom_file_service.dicom.query_keys import query_keys

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
            keys = query_keys(orjson.loads(header))
            conn.execute(_insert_new(conn, studies, keys.study, "study_instance_uid"))
            conn.execute(_insert_new(conn, series, keys.series, "series_instance_uid"))
            conn.execute(
                sa.update(instances)
                .where(instances.c.seq == seq)
                .values(instance_number=keys.instance["instance_number"])
            )
        last = rows[-1][0]


def _insert_new(conn: sa.Connection, table: sa.Table, values: dict[str, Any], key: str) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=[key])


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("instance_number")
    op.drop_table("series")
    op.drop_table("studies")
