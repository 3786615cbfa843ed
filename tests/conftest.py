"""Shared fixtures. `database` gives each test a fresh, migrated database: SQLite in the
test's tmp_path by default, or a throw-away schema in the PostgreSQL database named by
NUAGE_TEST_DATABASE_URL (as `make pg-test` does)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from nuage.store.database import Database, open_database

TEST_DATABASE_URL = os.environ.get("NUAGE_TEST_DATABASE_URL")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "db: uses the database (also run against PostgreSQL by `make pg-test`)"
    )


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    if TEST_DATABASE_URL is None:
        db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'nuage.db'}")
        try:
            yield db
        finally:
            await db.close()
        return
    # A schema per test is much cheaper than a database per test, and lets several
    # test runs share the server without seeing each other's rows.
    schema = f"test_{uuid.uuid4().hex}"
    admin = create_async_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        db = await open_database(TEST_DATABASE_URL, schema=schema)
        try:
            yield db
        finally:
            await db.close()
            async with admin.connect() as connection:
                await connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.dispose()
