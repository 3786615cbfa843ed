"""The transactions of the admin API: read a company's rows, or change them and have the
change in effect at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.admin.errors import ConflictError, NotFoundError
from nuage.pbx.directory import Directory
from nuage.store import repositories
from nuage.store.database import Database
from nuage.store.models import Company

__all__ = ["AdminStore"]


class AdminStore:
    def __init__(self, db: Database, directory: Directory) -> None:
        self.db = db
        self.directory = directory

    @asynccontextmanager
    async def reading(self, company_id: int) -> AsyncIterator[tuple[AsyncSession, Company]]:
        """A session and the company; NotFoundError when there is none."""
        async with self.db.session() as session:
            company = await repositories.company(session, company_id)
            if company is None:
                raise NotFoundError(f"No company {company_id}")
            yield session, company

    @asynccontextmanager
    async def changing(self, company_id: int) -> AsyncIterator[tuple[AsyncSession, Company]]:
        """A transaction on the company's rows, locked against other admin changes to the
        company (checks such as "the last status that rings" read, then write)."""
        async with self.changes() as session:
            company = await session.get(Company, company_id, with_for_update=True)
            if company is None:
                raise NotFoundError(f"No company {company_id}")
            yield session, company

    @asynccontextmanager
    async def changes(self) -> AsyncIterator[AsyncSession]:
        """One transaction that bumps the directory revision, as a plan does, so that
        other servers reload; this one reloads at once."""
        try:
            async with self.db.transaction() as session:
                yield session
                await session.flush()
                await repositories.bump_directory_revision(session)
        except IntegrityError:
            # The checks before a write read first: a concurrent change (a plan applied
            # meanwhile) can still take the extension, email or number.
            raise ConflictError(
                "conflict", "A concurrent change conflicts with this one; try again"
            ) from None
        await self.directory.load()
