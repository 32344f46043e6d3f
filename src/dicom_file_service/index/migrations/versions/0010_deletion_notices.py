"""Deletes heard by every instance (PostgreSQL): a notice for each transaction that deletes,
updates or truncates instance rows, and the leases of the instances that keep headers in
memory (``index.leased_cache``, ``index.delete_fence``). Nothing on SQLite, whose cache asks
the database file itself whether anything changed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The channel is the schema's (as index.leased_cache names it), the payload the transaction's
# id, which the deleting transaction waits to see acknowledged. One notice per transaction:
# PostgreSQL folds identical notices of one transaction into one.
_FUNCTION = """
CREATE FUNCTION dfs_instances_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dfs_gone_' || left(md5(TG_TABLE_SCHEMA), 16), txid_current()::text);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "serving_instances",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(_FUNCTION)
    op.execute(
        "CREATE TRIGGER instances_changed AFTER DELETE OR UPDATE OR TRUNCATE ON instances "
        "FOR EACH STATEMENT EXECUTE FUNCTION dfs_instances_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER instances_changed ON instances")
    op.execute("DROP FUNCTION dfs_instances_changed()")
    op.drop_table("serving_instances")
