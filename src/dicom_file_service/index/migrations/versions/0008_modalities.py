"""The registry of remote Application Entities ("modalities"): who may query and retrieve.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "modalities",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("ae_title", sa.String(16), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("allow", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_modalities_ae_title", "modalities", ["ae_title"])


def downgrade() -> None:
    op.drop_index("ix_modalities_ae_title", table_name="modalities")
    op.drop_table("modalities")
