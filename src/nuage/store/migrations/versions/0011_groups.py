"""Groups of users (reached at their own extension) and their voicemail boxes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("extension", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_groups_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("company_id", "extension", name=op.f("uq_groups_company_id_extension")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_group_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    op.create_index(op.f("ix_group_members_user_id"), "group_members", ["user_id"])
    bind = op.get_bind()
    # On SQLite, batch mode rebuilds the table: dropping the old `voicemail_boxes` with
    # foreign keys on would delete every message. open_database() migrates with them off.
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("migrate SQLite with PRAGMA foreign_keys=OFF (open_database does)")
    with op.batch_alter_table("voicemail_boxes") as batch:
        batch.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_voicemail_boxes_group_id_groups"),
            "groups",
            ["group_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(batch.f("uq_voicemail_boxes_group_id"), ["group_id"])


def downgrade() -> None:
    with op.batch_alter_table("voicemail_boxes") as batch:
        batch.drop_constraint(batch.f("uq_voicemail_boxes_group_id"), type_="unique")
        batch.drop_constraint(batch.f("fk_voicemail_boxes_group_id_groups"), type_="foreignkey")
        batch.drop_column("group_id")
    op.drop_index(op.f("ix_group_members_user_id"), table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("groups")
