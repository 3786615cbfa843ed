"""A company's inbound numbers (DIDs), each routed to the extension of a user, a group or
an IVR menu, or straight to a user's or group's voicemail box (*97 and its extension),
with the plan's validation."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.admin.errors import ConflictError, InvalidError, NotFoundError
from nuage.pbx.admin.patches import Patch, apply_patch
from nuage.pbx.admin.statuses import check_forwards
from nuage.pbx.admin.store import AdminStore
from nuage.pbx.numbering import VOICEMAIL_DEPOSIT_PREFIX, NumberError, normalize_number
from nuage.pbx.provision import NumberPlan, assign
from nuage.store import repositories
from nuage.store.models import Company, Number

__all__ = ["Numbers"]


class Numbers:
    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def list(self, company_id: int) -> list[Number]:
        """The company's numbers, in order."""
        async with self._store.reading(company_id) as (session, company):
            return await repositories.numbers(session, company.id)

    async def get(self, company_id: int, number_id: int) -> Number:
        async with self._store.reading(company_id) as (session, company):
            return await _number(session, company, number_id)

    async def create(self, company_id: int, entry: NumberPlan) -> Number:
        async with self._store.changing(company_id) as (session, company):
            e164 = _e164(entry, company)
            await _check_number_free(session, e164)
            await _check_route(session, company, entry.route)
            number = Number(company_id=company.id, number=e164, route=entry.route)
            session.add(number)
        return number

    async def update(self, company_id: int, number_id: int, patch: Patch[NumberPlan]) -> Number:
        async with self._store.changing(company_id) as (session, company):
            number = await _number(session, company, number_id)
            current = {"number": number.number, "route": number.route}
            entry = apply_patch(NumberPlan, current, patch.changes())
            e164 = _e164(entry, company)
            if e164 != number.number:
                await _check_number_free(session, e164)
            await _check_route(session, company, entry.route)
            assign(number, {"number": e164, "route": entry.route})
            await session.flush()
            # A status forwarding to the old number now calls it as an external number.
            await check_forwards(session, company)
        return number

    async def delete(self, company_id: int, number_id: int) -> None:
        async with self._store.changing(company_id) as (session, company):
            await session.delete(await _number(session, company, number_id))
            await session.flush()
            await check_forwards(session, company)


async def _number(session: AsyncSession, company: Company, number_id: int) -> Number:
    number = await session.get(Number, number_id)
    if number is None or number.company_id != company.id:
        raise NotFoundError(f"No number {number_id}")
    return number


def _e164(entry: NumberPlan, company: Company) -> str:
    try:
        return normalize_number(entry.number, company.country)
    except NumberError as exc:
        raise InvalidError(str(exc), field="number") from None


async def _check_number_free(session: AsyncSession, e164: str) -> None:
    # A number reaches one company; whose it is stays unsaid.
    if await repositories.number_owner(session, e164) is not None:
        raise ConflictError("number_taken", f"{e164} is already in use", field="number")


async def _check_route(session: AsyncSession, company: Company, route: str) -> None:
    """InvalidError unless the route is the extension of a user, group or IVR menu of
    the company, or *97 and a user's or group's (their voicemail box)."""
    box = route.startswith(VOICEMAIL_DEPOSIT_PREFIX)
    extension = route.removeprefix(VOICEMAIL_DEPOSIT_PREFIX)
    if await repositories.user_by_extension(session, company.id, extension) is not None:
        return
    groups = await repositories.groups(session, company.id)
    if any(group.extension == extension for group in groups):
        return
    if box:
        raise InvalidError(f"no user or group with extension {extension!r}", field="route")
    if any(menu.extension == route for menu in await repositories.ivr_menus(session, company.id)):
        return
    raise InvalidError(f"no user, group or IVR with extension {route!r}", field="route")
