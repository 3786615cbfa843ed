"""Statuses (F2, F3): each company's statuses with their call behaviour, and the status
each user chose. Companies that exist already get the default statuses, named in their
language (as `nuage provision` gives a plan without [[statuses]]).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of nuage.pbx.statuses.DEFAULT_STATUSES as of this revision:
# key, colour, behaviour, pause_acd, names by language.
_DEFAULTS = [
    (
        "available",
        "#2e7d32",
        "ring",
        False,
        {"fr": "Disponible", "nl": "Beschikbaar", "en": "Available"},
    ),
    (
        "meeting",
        "#ef6c00",
        "voicemail",
        False,
        {"fr": "En réunion", "nl": "In vergadering", "en": "In a meeting"},
    ),
    (
        "lunch",
        "#f9a825",
        "voicemail",
        True,
        {"fr": "Pause déjeuner", "nl": "Lunchpauze", "en": "Lunch"},
    ),
    (
        "dnd",
        "#c62828",
        "busy",
        True,
        {"fr": "Ne pas déranger", "nl": "Niet storen", "en": "Do not disturb"},
    ),
    ("away", "#757575", "voicemail", True, {"fr": "Absent", "nl": "Afwezig", "en": "Away"}),
]


def upgrade() -> None:
    statuses = op.create_table(
        "statuses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("colour", sa.String(length=7), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("behaviour", sa.String(length=16), nullable=False),
        sa.Column("forward_to", sa.String(length=16), nullable=True),
        sa.Column("pause_acd", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_statuses_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statuses")),
        sa.UniqueConstraint("company_id", "key", name=op.f("uq_statuses_company_id_key")),
    )
    bind = op.get_bind()
    # On SQLite, batch mode adds the constraint by rebuilding the table (elsewhere it is a
    # plain ALTER): dropping the old `users` with foreign keys on would delete every
    # registration, session and favorite. open_database() migrates with them off.
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("migrate SQLite with PRAGMA foreign_keys=OFF (open_database does)")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("status_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_users_status_id_statuses"),
            "statuses",
            ["status_id"],
            ["id"],
            ondelete="SET NULL",
        )
    companies = bind.execute(sa.text("SELECT id, language FROM companies")).all()
    rows = [
        {
            "company_id": company_id,
            "key": key,
            "name": names.get(language, names["en"]),
            "colour": colour,
            "position": position,
            "behaviour": behaviour,
            "forward_to": None,
            "pause_acd": pause_acd,
        }
        for company_id, language in companies
        for position, (key, colour, behaviour, pause_acd, names) in enumerate(_DEFAULTS)
    ]
    if rows:
        op.bulk_insert(statuses, rows)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(batch.f("fk_users_status_id_statuses"), type_="foreignkey")
        batch.drop_column("status_id")
    op.drop_table("statuses")
