"""The index schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

One row per stored instance. The header is kept as DICOM JSON (orjson bytes) so a tag query or
``/metadata`` never re-reads the stored file. ``seq`` orders the listing (newest first) and is
the keyset cursor; ``sop_instance_uid`` is unique: the database, not Python, settles upload races.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_SeqType = BigInteger().with_variant(Integer(), "sqlite")

instances = Table(
    "instances",
    metadata,
    Column("seq", _SeqType, primary_key=True, autoincrement=True),
    Column("file_id", String(32), nullable=False, unique=True),
    Column("sop_instance_uid", String(64), nullable=False, unique=True),
    Column("series_instance_uid", String(64), nullable=False),
    Column("study_instance_uid", String(64), nullable=False),
    Column("sop_class_uid", String(64), nullable=False),
    Column("transfer_syntax_uid", String(64), nullable=False),
    Column("patient_id", String(64), nullable=True),
    Column("patient_name", String(324), nullable=True),
    Column("modality", String(16), nullable=True),
    Column("study_date", String(8), nullable=True),
    Column("number_of_frames", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("blob_key", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("header", LargeBinary, nullable=False),
    Column("header_index", LargeBinary, nullable=False),
    Column("bulk_lengths", LargeBinary, nullable=False),
    # Extended offsets of encapsulated multi-frame pixel data (dicom.parse.frame_table), so
    # one frame is read without walking the fragments before it.
    Column("frame_table", LargeBinary, nullable=True),
)

Index("ix_instances_study", instances.c.study_instance_uid)
Index("ix_instances_series", instances.c.series_instance_uid)
Index("ix_instances_patient_id", instances.c.patient_id)
Index("ix_instances_modality", instances.c.modality)

# Background renderings waiting to be made (the embedded queue; PostgreSQL uses procrastinate's
# tables). A row is written in the same transaction as its instance, so a crash between the
# commit and the enqueue loses no job; ``claimed_until`` lets a crashed worker's claim lapse.
render_outbox = Table(
    "render_outbox",
    metadata,
    Column("seq", _SeqType, primary_key=True, autoincrement=True),
    Column("file_id", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("claimed_until", Float, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
)
