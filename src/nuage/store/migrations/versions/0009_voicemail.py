"""Voicemail: boxes (a user's own, or a group's) and the messages left in them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voicemail_boxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("pin_hash", sa.String(200), nullable=True),
        sa.Column("greeting_path", sa.String(500), nullable=True),
        sa.Column("max_seconds", sa.Integer(), nullable=False),
        sa.Column("send_email", sa.Boolean(), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("attach_audio", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_table(
        "voicemail_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("box_id", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("caller_name", sa.String(200), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("heard_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["box_id"], ["voicemail_boxes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_voicemail_messages_box_id", "voicemail_messages", ["box_id"])


def downgrade() -> None:
    op.drop_index("ix_voicemail_messages_box_id", table_name="voicemail_messages")
    op.drop_table("voicemail_messages")
    op.drop_table("voicemail_boxes")
