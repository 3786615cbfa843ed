"""How a company's calls announce that recording started: a beep or a spoken sentence.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("companies") as batch:
        batch.add_column(
            sa.Column(
                "recording_announcement",
                sa.String(length=8),
                nullable=False,
                server_default="beep",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("companies") as batch:
        batch.drop_column("recording_announcement")
