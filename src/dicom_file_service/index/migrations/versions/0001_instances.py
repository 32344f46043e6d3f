"""Create the instances table.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("file_id", sa.String(32), nullable=False, unique=True),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False, unique=True),
        sa.Column("series_instance_uid", sa.String(64), nullable=False),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("sop_class_uid", sa.String(64), nullable=False),
        sa.Column("transfer_syntax_uid", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=True),
        sa.Column("patient_name", sa.String(324), nullable=True),
        sa.Column("modality", sa.String(16), nullable=True),
        sa.Column("study_date", sa.String(8), nullable=True),
        sa.Column("number_of_frames", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blob_key", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("header", sa.LargeBinary(), nullable=False),
        sa.Column("header_index", sa.LargeBinary(), nullable=False),
        sa.Column("bulk_lengths", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_instances_study", "instances", ["study_instance_uid"])
    op.create_index("ix_instances_series", "instances", ["series_instance_uid"])
    op.create_index("ix_instances_patient_id", "instances", ["patient_id"])
    op.create_index("ix_instances_modality", "instances", ["modality"])


def downgrade() -> None:
    op.drop_table("instances")
