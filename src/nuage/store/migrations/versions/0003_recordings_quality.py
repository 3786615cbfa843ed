"""Call recordings, and call quality (MOS) kept in each call record.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("mos_average", sa.Float(), nullable=True))
        batch.add_column(sa.Column("mos_worst", sa.Float(), nullable=True))
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("call_record_id", sa.Integer(), nullable=False),
        sa.Column("owner_user_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("stopped_by", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_record_id"],
            ["call_records.id"],
            name=op.f("fk_recordings_call_record_id_call_records"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_recordings_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_recordings_owner_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    op.create_index(
        op.f("ix_recordings_call_record_id"), "recordings", ["call_record_id"], unique=False
    )
    op.create_index(
        op.f("ix_recordings_owner_user_id"), "recordings", ["owner_user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_recordings_owner_user_id"), table_name="recordings")
    op.drop_index(op.f("ix_recordings_call_record_id"), table_name="recordings")
    op.drop_table("recordings")
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("mos_worst")
        batch.drop_column("mos_average")
