"""Where a dialled number goes: a colleague, the company's trunk, or nowhere (and why)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.numbering import (
    NumberError,
    OutboundPolicy,
    is_emergency_number,
    normalize_number,
)
from nuage.store import repositories
from nuage.store.models import Company, Trunk, User

# Dialled strings this short that are not an extension are a mistyped extension, not a
# number to send to the carrier (no E.164 number has fewer than 7 digits in practice).
MAX_EXTENSION_LENGTH = 6


@dataclass(frozen=True, slots=True)
class ToUser:
    user: User


@dataclass(frozen=True, slots=True)
class ToTrunk:
    number: str  # E.164
    trunk: Trunk


@dataclass(frozen=True, slots=True)
class Refused:
    status: int
    reason: str


Route = ToUser | ToTrunk | Refused


async def route_from_user(
    session: AsyncSession, company: Company, dialled: str, active_external_calls: int
) -> Route:
    """A call a user placed: an extension, one of the company's own numbers, or external."""
    user = await repositories.user_by_extension(session, company.id, dialled)
    if user is not None:
        return ToUser(user)
    if is_emergency_number(dialled, company.country):
        # Never refused by policy or by the external-call limit, and sent as dialled: the
        # carrier routes emergency short codes by the caller's location.
        trunks = await repositories.trunks(session, company.id)
        if not trunks:
            return Refused(503, "No trunk for emergency calls")
        return ToTrunk(dialled, trunks[0])
    digits = dialled.lstrip("+")
    if digits.isdigit() and len(digits) <= MAX_EXTENSION_LENGTH and not dialled.startswith("+"):
        return Refused(404, f"No extension {dialled}")
    try:
        number = normalize_number(dialled, company.country)
    except NumberError:
        return Refused(484, "Invalid number")
    own = await _own_number_target(session, company, number)
    if own is not None:
        return own
    policy = OutboundPolicy.create(
        company.allowed_countries, company.blocked_prefixes, company.max_external_calls
    )
    decision = policy.check(number, active_external_calls)
    if not decision.allowed:
        return Refused(403, decision.reason)
    trunks = await repositories.trunks(session, company.id)
    if not trunks:
        return Refused(503, "No trunk for external calls")
    return ToTrunk(number, trunks[0])


async def route_from_trunk(session: AsyncSession, company: Company, dialled: str) -> Route:
    """A call the carrier delivered to one of the company's numbers."""
    try:
        number = normalize_number(dialled, company.country)
    except NumberError:
        return Refused(404, "Unknown number")
    target = await _own_number_target(session, company, number)
    return target if target is not None else Refused(404, f"Number {number} not in service")


async def _own_number_target(
    session: AsyncSession, company: Company, number: str
) -> ToUser | Refused | None:
    owner = await repositories.number_owner(session, number)
    if owner is None or owner.company_id != company.id:
        return None
    user = await repositories.user_by_extension(session, company.id, owner.route)
    if user is None:
        return Refused(404, f"Number {number} has no destination")
    return ToUser(user)


async def caller_id_of(session: AsyncSession, company: Company, user: User, trunk: Trunk) -> str:
    """The number shown to people a user calls outside: their own DID, else the trunk's or
    the company's first number."""
    numbers = await repositories.numbers(session, company.id)
    for number in numbers:
        if number.route == user.extension:
            return number.number
    if trunk.caller_id:
        return trunk.caller_id
    return numbers[0].number if numbers else user.extension
