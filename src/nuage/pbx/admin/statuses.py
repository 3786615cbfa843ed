"""A company's statuses (F2, F3), with the rules of the plan's [[statuses]]: forward
targets a user of the company or a number its policy allows, and at least one status
rings. Users whose status is deleted are back on the default."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.admin.errors import ConflictError, InvalidError, NotFoundError
from nuage.pbx.admin.patches import Patch, apply_patch
from nuage.pbx.admin.store import AdminStore
from nuage.pbx.numbering import OutboundPolicy
from nuage.pbx.provision import StatusPlan, assign, forward_target, status_values
from nuage.store import repositories
from nuage.store.models import Company, Status

__all__ = ["Statuses", "check_forwards", "status_entry"]


def status_entry(status: Status) -> dict[str, Any]:
    """The status's row as the fields of a StatusPlan."""
    return {
        "key": status.key,
        "name": status.name,
        "colour": status.colour,
        "behaviour": status.behaviour,
        "forward_to": status.forward_to,
        "pause_acd": status.pause_acd,
    }


class Statuses:
    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def list(self, company_id: int) -> list[Status]:
        """The company's statuses, in the order of the app's menu."""
        async with self._store.reading(company_id) as (session, company):
            return await repositories.statuses(session, company.id)

    async def get(self, company_id: int, key: str) -> Status:
        async with self._store.reading(company_id) as (session, company):
            return await _status(session, company, key)

    async def create(self, company_id: int, entry: StatusPlan) -> Status:
        """A new status, last in the menu."""
        async with self._store.changing(company_id) as (session, company):
            current = await repositories.statuses(session, company.id)
            if any(status.key == entry.key for status in current):
                raise ConflictError("key_taken", f"There is a status {entry.key!r}", field="key")
            position = max((status.position for status in current), default=-1) + 1
            target = await _forward_target(session, company, entry)
            status = Status(
                company_id=company.id, key=entry.key, **status_values(entry, position, target)
            )
            session.add(status)
        return status

    async def update(self, company_id: int, key: str, patch: Patch[StatusPlan]) -> Status:
        async with self._store.changing(company_id) as (session, company):
            status = await _status(session, company, key)
            entry = apply_patch(StatusPlan, status_entry(status), patch.changes())
            target = await _forward_target(session, company, entry)
            assign(status, status_values(entry, status.position, target))
            await session.flush()
            await _check_one_rings(session, company, field="behaviour")
        return status

    async def delete(self, company_id: int, key: str) -> None:
        """Delete the status; its users are back on the default (the foreign key's ON
        DELETE SET NULL)."""
        async with self._store.changing(company_id) as (session, company):
            await session.delete(await _status(session, company, key))
            await session.flush()
            await _check_one_rings(session, company)


async def check_forwards(session: AsyncSession, company: Company) -> None:
    """ConflictError unless every status still forwards where the plan's rules allow,
    after the company's numbers or policy changed."""
    for status in await repositories.statuses(session, company.id):
        if status.behaviour != "forward":
            continue
        try:
            await _forward_target(session, company, StatusPlan.model_validate(status_entry(status)))
        except InvalidError as exc:
            raise ConflictError(
                "in_use", f"The status {status.key!r} forwards calls there: {exc.message}"
            ) from None


async def _status(session: AsyncSession, company: Company, key: str) -> Status:
    for status in await repositories.statuses(session, company.id):
        if status.key == key:
            return status
    raise NotFoundError(f"No status {key!r}")


async def _forward_target(session: AsyncSession, company: Company, entry: StatusPlan) -> str | None:
    users = {user.extension for user in await repositories.users(session, company.id)}
    numbers = {number.number for number in await repositories.numbers(session, company.id)}
    outbound = OutboundPolicy.create(
        company.allowed_countries, company.blocked_prefixes, company.max_external_calls
    )
    try:
        return forward_target(
            entry, country=company.country, users=users, own_numbers=numbers, outbound=outbound
        )
    except ValueError as exc:
        raise InvalidError(str(exc), field="forward_to") from None


async def _check_one_rings(
    session: AsyncSession, company: Company, *, field: str | None = None
) -> None:
    if not any(s.behaviour == "ring" for s in await repositories.statuses(session, company.id)):
        raise ConflictError(
            "conflict",
            'At least one status must have behaviour "ring" (the default, "Available")',
            field=field,
        )
