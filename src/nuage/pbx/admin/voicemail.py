"""The settings of a company's voicemail boxes (F17, P5), each named by the extension of
its user or group, with the plan's [[voicemail]] validation. An owner without a box row
has the defaults; setting them makes the row, with the plan's columns. The PIN is set,
never shown."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.admin.errors import NotFoundError
from nuage.pbx.admin.store import AdminStore
from nuage.pbx.provision import VoicemailSettings, assign, box_values
from nuage.pbx.voicemail.store import BoxKey, BoxSettings
from nuage.store import repositories
from nuage.store.models import Company, VoicemailBox

__all__ = ["VoicemailBoxes"]


class VoicemailBoxes:
    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def get(self, company_id: int, extension: str) -> BoxSettings:
        """The box's settings; the defaults while it has no row."""
        async with self._store.reading(company_id) as (session, company):
            key = await _box_key(session, company, extension)
            return BoxSettings.of(await _box(session, key))

    async def update(
        self, company_id: int, extension: str, settings: VoicemailSettings
    ) -> BoxSettings:
        """Set every setting (the greeting stays); a new PIN is hashed afresh."""
        # argon2 is slow on purpose: in a thread, and before the transaction.
        values = await asyncio.to_thread(box_values, settings, None)
        async with self._store.changing(company_id) as (session, company):
            key = await _box_key(session, company, extension)
            box = await _box(session, key)
            if box is None:
                box = VoicemailBox(
                    company_id=company.id, user_id=key.user_id, group_id=key.group_id, **values
                )
                session.add(box)
            else:
                assign(box, values)
            await session.flush()
            found = BoxSettings.of(box)
        return found


async def _box_key(session: AsyncSession, company: Company, extension: str) -> BoxKey:
    """The box of the company's user or group at ``extension``."""
    user = await repositories.user_by_extension(session, company.id, extension)
    if user is not None:
        return BoxKey.of(user)
    for group in await repositories.groups(session, company.id):
        if group.extension == extension:
            return BoxKey.of(group)
    raise NotFoundError(f"No user or group with extension {extension}")


async def _box(session: AsyncSession, key: BoxKey) -> VoicemailBox | None:
    box: VoicemailBox | None = await session.scalar(select(VoicemailBox).where(key.selects))
    return box
