"""Alembic environment: runs on the connection handed in by ``index.engine.upgrade``."""

from __future__ import annotations

from alembic import context

from dicom_file_service.index.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via index.engine.upgrade
    raise RuntimeError("run migrations through dicom_file_service.index.engine.upgrade")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
