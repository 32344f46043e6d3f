"""The index schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

One row per stored instance. The header is kept as DICOM JSON (orjson bytes) so a tag query or
``/metadata`` never re-reads the stored file. ``seq`` orders the listing (newest first) and is
the keyset cursor; ``sop_instance_uid`` is unique: the database, not Python, settles upload races.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
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
    Column("instance_number", BigInteger, nullable=True),
    # What was odd about the file but did not stop it being kept (the ingest policy's
    # warnings), as a JSON list of strings; NULL when nothing was.
    Column("warnings", LargeBinary, nullable=True),
)

Index("ix_instances_study", instances.c.study_instance_uid)
Index("ix_instances_series", instances.c.series_instance_uid)
Index("ix_instances_patient_id", instances.c.patient_id)
Index("ix_instances_modality", instances.c.modality)

# QIDO-RS matches on these (dicom.query_keys makes their values). A study's and a series' row
# holds the values of the first instance stored in it, and goes with its last instance.
_Key = String(256)

studies = Table(
    "studies",
    metadata,
    Column("seq", _SeqType, primary_key=True, autoincrement=True),
    Column("study_instance_uid", String(64), nullable=False, unique=True),
    Column("patient_name", _Key),
    Column("patient_name_fuzzy", _Key),
    Column("patient_id", _Key),
    Column("study_date", _Key),
    Column("study_time", _Key),
    Column("study_datetime", _Key),
    Column("accession_number", _Key),
    Column("referring_physician_name", _Key),
    Column("referring_physician_name_fuzzy", _Key),
    Column("study_id", _Key),
    Column("study_description", _Key),
)
Index("ix_studies_patient_name", studies.c.patient_name)
Index("ix_studies_patient_name_fuzzy", studies.c.patient_name_fuzzy)
Index("ix_studies_patient_id", studies.c.patient_id)
Index("ix_studies_study_date", studies.c.study_date)
Index("ix_studies_study_datetime", studies.c.study_datetime)
Index("ix_studies_accession_number", studies.c.accession_number)

series = Table(
    "series",
    metadata,
    Column("seq", _SeqType, primary_key=True, autoincrement=True),
    Column("series_instance_uid", String(64), nullable=False, unique=True),
    Column("study_instance_uid", String(64), nullable=False),
    Column("modality", _Key),
    Column("series_number", BigInteger),
    Column("series_description", _Key),
    Column("performed_procedure_step_start_date", _Key),
    Column("performed_procedure_step_start_time", _Key),
    Column("scheduled_procedure_step_ids", _Key),
    Column("requested_procedure_ids", _Key),
)
Index("ix_series_study", series.c.study_instance_uid)
Index("ix_series_modality", series.c.modality)

# The keys DICOM_FS_EXTRA_QUERY_KEYS indexes: one row per value of an instance
# (dicom.query_keys.extra_key_values), written with the instance and by ``db reindex`` for
# those stored before; ``tag`` is the attribute's tag path, ``form`` ``value`` or ``fuzzy``
# (a person name without accents). A study or series matches when any of its instances does.
extra_keys = Table(
    "extra_keys",
    metadata,
    Column("seq", _SeqType, nullable=False),  # the instance row's
    Column("tag", String(128), nullable=False),
    Column("form", String(8), nullable=False),
    Column("value", _Key, nullable=False),
)
Index("ix_extra_keys_match", extra_keys.c.tag, extra_keys.c.form, extra_keys.c.value)
Index("ix_extra_keys_seq", extra_keys.c.seq)

# How far ``db reindex`` has come for each extra key: instances up to ``cursor`` (a seq) are
# indexed; a key is used for matching once ``complete``, and answered from headers until then.
extra_key_state = Table(
    "extra_key_state",
    metadata,
    Column("tag", String(128), primary_key=True),
    Column("cursor", BigInteger, nullable=False, server_default="0"),
    Column("complete", Boolean, nullable=False, server_default=false()),
)

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

# The remote Application Entities the DICOM listener knows (service.modalities): who may
# query and retrieve, and where a C-MOVE sends. ``allow`` is a JSON list of operations
# ("echo", "store", "find", "move", "get"); ``name`` is the registry's own key, not the title.
modalities = Table(
    "modalities",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("ae_title", String(16), nullable=False),
    Column("host", String(253), nullable=False),
    Column("port", Integer, nullable=False),
    Column("allow", Text, nullable=False),
    Column("updated_at", Float, nullable=True),
)
Index("ix_modalities_ae_title", modalities.c.ae_title)

# Background jobs a client started (service.jobs: sending and retrieving over the DICOM
# network), polled at /jobs/{id}. ``params`` and ``result`` are JSON objects. ``state`` is
# pending, running, succeeded or failed. On the embedded queue the row is its own queue entry
# (``claimed_until``, ``attempts``, as in ``render_outbox``); on PostgreSQL procrastinate's
# job carries the id.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("params", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("total", Integer, nullable=False, server_default="0"),
    Column("result", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("claimed_until", Float, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
)
Index("ix_jobs_state", jobs.c.state, jobs.c.claimed_until)
