"""The extra query keys (DICOM_FS_EXTRA_QUERY_KEYS): their values, and ``db reindex``'s cursor.

Nothing is filled here: ``dicom-file-service db reindex`` indexes what is stored, resumably.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "extra_keys",
        sa.Column("seq", _SEQ, nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("form", sa.String(8), nullable=False),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_index("ix_extra_keys_match", "extra_keys", ["tag", "form", "value"])
    op.create_index("ix_extra_keys_seq", "extra_keys", ["seq"])
    op.create_table(
        "extra_key_state",
        sa.Column("tag", sa.String(128), primary_key=True),
        sa.Column("cursor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("complete", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("extra_key_state")
    op.drop_index("ix_extra_keys_seq", table_name="extra_keys")
    op.drop_index("ix_extra_keys_match", table_name="extra_keys")
    op.drop_table("extra_keys")
