"""Initial schema: companies, users, trunks, numbers, registrations, call records.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("allowed_countries", sa.JSON(), nullable=False),
        sa.Column("blocked_prefixes", sa.JSON(), nullable=False),
        sa.Column("max_external_calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("domain", name=op.f("uq_companies_domain")),
    )
    op.create_table(
        "numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("route", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_numbers_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_numbers")),
        sa.UniqueConstraint("number", name=op.f("uq_numbers_number")),
    )
    op.create_index(op.f("ix_numbers_company_id"), "numbers", ["company_id"], unique=False)
    op.create_table(
        "trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=True),
        sa.Column("password", sa.String(length=200), nullable=True),
        sa.Column("register", sa.Boolean(), nullable=False),
        sa.Column("caller_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_trunks_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trunks")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_trunks_company_id_name")),
    )
    op.create_index(op.f("ix_trunks_host"), "trunks", ["host"], unique=False)
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("extension", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("sip_ha1_md5", sa.String(length=32), nullable=False),
        sa.Column("sip_ha1_sha256", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_users_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("company_id", "extension", name=op.f("uq_users_company_id_extension")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "call_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("caller_name", sa.String(length=200), nullable=False),
        sa.Column("callee", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("caller_user_id", sa.Integer(), nullable=True),
        sa.Column("callee_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["callee_user_id"],
            ["users.id"],
            name=op.f("fk_call_records_callee_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["caller_user_id"],
            ["users.id"],
            name=op.f("fk_call_records_caller_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_call_records_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_records")),
    )
    op.create_index(
        op.f("ix_call_records_callee_user_id"), "call_records", ["callee_user_id"], unique=False
    )
    op.create_index(
        op.f("ix_call_records_caller_user_id"), "call_records", ["caller_user_id"], unique=False
    )
    op.create_index(
        op.f("ix_call_records_company_id_started_at"),
        "call_records",
        ["company_id", "started_at"],
        unique=False,
    )
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("contact", sa.Text(), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("source_host", sa.String(length=253), nullable=False),
        sa.Column("source_port", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.String(length=100), nullable=True),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("cseq", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("instance_id", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_registrations_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_registrations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registrations")),
        sa.UniqueConstraint("user_id", "contact", name=op.f("uq_registrations_user_id_contact")),
    )
    op.create_index(
        op.f("ix_registrations_expires_at"), "registrations", ["expires_at"], unique=False
    )
    op.create_table(
        "trunk_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trunk_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.ForeignKeyConstraint(
            ["trunk_id"],
            ["trunks.id"],
            name=op.f("fk_trunk_addresses_trunk_id_trunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trunk_addresses")),
        sa.UniqueConstraint(
            "trunk_id", "address", name=op.f("uq_trunk_addresses_trunk_id_address")
        ),
    )
    op.create_index(
        op.f("ix_trunk_addresses_address"), "trunk_addresses", ["address"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_trunk_addresses_address"), table_name="trunk_addresses")
    op.drop_table("trunk_addresses")
    op.drop_index(op.f("ix_registrations_expires_at"), table_name="registrations")
    op.drop_table("registrations")
    op.drop_index(op.f("ix_call_records_company_id_started_at"), table_name="call_records")
    op.drop_index(op.f("ix_call_records_caller_user_id"), table_name="call_records")
    op.drop_index(op.f("ix_call_records_callee_user_id"), table_name="call_records")
    op.drop_table("call_records")
    op.drop_table("users")
    op.drop_index(op.f("ix_trunks_host"), table_name="trunks")
    op.drop_table("trunks")
    op.drop_index(op.f("ix_numbers_company_id"), table_name="numbers")
    op.drop_table("numbers")
    op.drop_table("companies")
