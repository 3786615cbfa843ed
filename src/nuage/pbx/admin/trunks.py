"""A company's trunks (its connections to carriers), with the plan's validation. A
running server's trunk registrations follow the changes within seconds."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.admin.errors import ConflictError, InvalidError, NotFoundError
from nuage.pbx.admin.patches import Patch, apply_patch
from nuage.pbx.admin.store import AdminStore
from nuage.pbx.numbering import NumberError, normalize_number
from nuage.pbx.provision import TrunkPlan, assign, set_trunk_addresses, trunk_values
from nuage.store import repositories
from nuage.store.models import Company, Trunk

__all__ = ["Trunks", "trunk_entry"]


def trunk_entry(trunk: Trunk) -> dict[str, Any]:
    """The trunk's row as the fields of a TrunkPlan (by alias)."""
    host = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
    return {
        "name": trunk.name,
        "host": f"{host}:{trunk.port}",
        "transport": trunk.transport,
        "username": trunk.username,
        "password": trunk.password,
        "register": trunk.register,
        "inbound_addresses": trunk.inbound_addresses,
        "caller_id": trunk.caller_id,
    }


class Trunks:
    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def list(self, company_id: int) -> list[Trunk]:
        """The company's trunks, by name."""
        async with self._store.reading(company_id) as (session, company):
            return await repositories.trunks(session, company.id)

    async def get(self, company_id: int, trunk_id: int) -> Trunk:
        async with self._store.reading(company_id) as (session, company):
            return await _trunk(session, company, trunk_id)

    async def create(self, company_id: int, entry: TrunkPlan) -> Trunk:
        async with self._store.changing(company_id) as (session, company):
            await _check_name_free(session, company, entry.name)
            trunk = Trunk(
                company_id=company.id,
                name=entry.name,
                **trunk_values(entry, _caller_id(entry, company)),
            )
            set_trunk_addresses(trunk, entry.inbound_addresses)
            session.add(trunk)
        return trunk

    async def update(self, company_id: int, trunk_id: int, patch: Patch[TrunkPlan]) -> Trunk:
        async with self._store.changing(company_id) as (session, company):
            trunk = await _trunk(session, company, trunk_id)
            entry = apply_patch(TrunkPlan, trunk_entry(trunk), patch.changes())
            if entry.name != trunk.name:
                await _check_name_free(session, company, entry.name)
            assign(trunk, {"name": entry.name} | trunk_values(entry, _caller_id(entry, company)))
            set_trunk_addresses(trunk, entry.inbound_addresses)
        return trunk

    async def delete(self, company_id: int, trunk_id: int) -> None:
        async with self._store.changing(company_id) as (session, company):
            await session.delete(await _trunk(session, company, trunk_id))


async def _trunk(session: AsyncSession, company: Company, trunk_id: int) -> Trunk:
    trunk = await session.get(Trunk, trunk_id)
    if trunk is None or trunk.company_id != company.id:
        raise NotFoundError(f"No trunk {trunk_id}")
    return trunk


async def _check_name_free(session: AsyncSession, company: Company, name: str) -> None:
    if any(trunk.name == name for trunk in await repositories.trunks(session, company.id)):
        raise ConflictError("name_taken", f"There is a trunk named {name!r}", field="name")


def _caller_id(entry: TrunkPlan, company: Company) -> str | None:
    """The entry's caller id in E.164."""
    if entry.caller_id is None:
        return None
    try:
        return normalize_number(entry.caller_id, company.country)
    except NumberError as exc:
        raise InvalidError(str(exc), field="caller_id") from None
