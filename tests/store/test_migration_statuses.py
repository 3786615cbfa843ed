"""Migration 0008 on a database in use: the users' rows and everything referring to them
stay (SQLite rebuilds the users table), and existing companies get the default statuses
in their language."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import create_async_engine

from nuage.store.database import MIGRATIONS_DIR, _sqlite_pragmas, open_database

TEST_DATABASE_URL = os.environ.get("NUAGE_TEST_DATABASE_URL")

pytestmark = pytest.mark.db


def _upgrade(connection: Connection, revision: str) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[tuple[str, str | None]]:
    """A database URL and schema (PostgreSQL) for a database built by hand."""
    if TEST_DATABASE_URL is None:
        yield f"sqlite+aiosqlite:///{tmp_path / 'nuage.db'}", None
        return
    schema = f"test_{uuid.uuid4().hex}"
    admin = create_async_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        yield TEST_DATABASE_URL, schema
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.dispose()


AT = datetime(2030, 1, 1, tzinfo=UTC)
ROWS = [
    "INSERT INTO companies (id, name, domain, country, language, allowed_countries,"
    " blocked_prefixes, max_external_calls, recording_announcement) VALUES"
    " (1, 'Acme', 'acme.example', 'BE', 'nl', '[]', '[]', 10, 'beep'),"
    " (2, 'Globex', 'globex.example', 'FR', 'fr', '[]', '[]', 10, 'beep')",
    "INSERT INTO users (id, company_id, name, extension, email, password_hash, sip_ha1_md5,"
    " sip_ha1_sha256, role) VALUES"
    " (1, 1, 'Jan', '1001', 'jan@acme.example', 'h', 'm', 's', 'user'),"
    " (2, 1, 'Els', '1002', 'els@acme.example', 'h', 'm', 's', 'admin')",
    "INSERT INTO registrations (company_id, user_id, contact, transport, source_host,"
    " source_port, call_id, cseq, expires_at) VALUES"
    " (1, 1, '<sip:1001@192.0.2.9>', 'udp', '192.0.2.9', 5060, 'r', 1, :at)",
    "INSERT INTO favorites (user_id, favorite_user_id, created_at) VALUES (1, 2, :at)",
    "INSERT INTO call_records (company_id, call_id, direction, caller, caller_name, callee,"
    " started_at, reason, caller_user_id, callee_user_id) VALUES"
    " (1, 'c', 'internal', '1001', '', '1002', :at, '', 1, 2)",
]


async def test_upgrade_keeps_rows_and_adds_default_statuses(
    target: tuple[str, str | None],
) -> None:
    url, schema = target
    connect_args: dict[str, Any] = {}
    if schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    engine = create_async_engine(url, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        # As a server at 0007 left it: foreign keys enforced.
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, "0007")
            for statement in ROWS:
                await connection.execute(text(statement), {"at": AT})
    finally:
        await engine.dispose()

    db = await open_database(url, schema=schema)
    try:
        async with db.engine.connect() as connection:

            async def scalar(query: str) -> Any:
                return (await connection.execute(text(query))).scalar()

            assert await scalar("SELECT count(*) FROM registrations") == 1
            assert await scalar("SELECT count(*) FROM favorites") == 1
            assert await scalar("SELECT callee_user_id FROM call_records") == 2
            assert await scalar("SELECT count(*) FROM users WHERE status_id IS NULL") == 2
            statuses = (
                await connection.execute(
                    text(
                        "SELECT company_id, position, key, name, behaviour, pause_acd"
                        " FROM statuses ORDER BY company_id, position"
                    )
                )
            ).all()
            if db.dialect == "sqlite":
                assert await scalar("PRAGMA foreign_keys") == 1
    finally:
        await db.close()
    assert [tuple(row) for row in statuses] == [
        (1, 0, "available", "Beschikbaar", "ring", False),
        (1, 1, "meeting", "In vergadering", "voicemail", False),
        (1, 2, "lunch", "Lunchpauze", "voicemail", True),
        (1, 3, "dnd", "Niet storen", "busy", True),
        (1, 4, "away", "Afwezig", "voicemail", True),
        (2, 0, "available", "Disponible", "ring", False),
        (2, 1, "meeting", "En réunion", "voicemail", False),
        (2, 2, "lunch", "Pause déjeuner", "voicemail", True),
        (2, 3, "dnd", "Ne pas déranger", "busy", True),
        (2, 4, "away", "Absent", "voicemail", True),
    ]
