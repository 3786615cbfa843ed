"""The database handle: an async engine, its sessions, and the schema migrated to head."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = ["MIGRATIONS_DIR", "Database", "open_database"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class Database:
    """An engine and a session factory; sessions keep their objects readable after commit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """The backend: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def session(self) -> AsyncSession:
        return self.sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction: committed on exit, rolled back on an exception."""
        async with self.sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; NORMAL is durable at every checkpoint in WAL
    # mode and avoids an fsync per commit, which registrations would otherwise pay for.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # SQLite ignores declared foreign keys unless asked, per connection.
    cursor.execute("PRAGMA foreign_keys=ON")
    # `nuage provision` writes from another process while the server runs.
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _upgrade(connection: Connection) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py runs on this connection instead of opening its own engine.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def open_database(url: str, *, schema: str | None = None) -> Database:
    """Connect and migrate the schema to the newest revision.

    `schema` (PostgreSQL only) puts every table, the Alembic version table included, in
    that existing schema; tests use it to give each test its own empty database cheaply.
    """
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if schema is not None:
            raise ValueError("schema is only supported on PostgreSQL")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    elif schema is not None:
        connect_args["server_settings"] = {"search_path": schema}
    engine = create_async_engine(parsed, connect_args=connect_args)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    try:
        async with engine.connect() as connection:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:
                # Migrations that rebuild a table (SQLite's way to add a constraint) drop
                # the old one, which with foreign keys on would delete or null every row
                # referring to it. The pragma only takes effect outside a transaction:
                # the driver begins one at the first write, not before this statement.
                await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await connection.run_sync(_upgrade)
            if sqlite:
                broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"migrations broke foreign keys: {broken[:5]}")
            await connection.commit()
            if sqlite:
                await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
    except BaseException:
        await engine.dispose()
        raise
    return Database(engine)
