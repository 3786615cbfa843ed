"""Where a dialled number goes: a colleague, a group, a voice menu, a voicemail box, the
company's trunk, or nowhere (and why)."""

from __future__ import annotations

from dataclasses import dataclass

from nuage.pbx.directory import Directory
from nuage.pbx.numbering import (
    VOICEMAIL_DEPOSIT_PREFIX,
    NumberError,
    OutboundPolicy,
    is_emergency_number,
    normalize_number,
)
from nuage.store.models import Company, Group, IvrMenu, Trunk, User

# Dialled strings this short that are not an extension are a mistyped extension, not a
# number to send to the carrier (no E.164 number has fewer than 7 digits in practice).
MAX_EXTENSION_LENGTH = 6
# The feature code a user dials from their own phone to listen to their voicemail. Not a
# route of its own: only a user's call (never a carrier's, nor a transfer) reaches it.
VOICEMAIL_ACCESS_CODE = "*98"


@dataclass(frozen=True, slots=True)
class ToUser:
    user: User


@dataclass(frozen=True, slots=True)
class ToIvr:
    menu: IvrMenu


@dataclass(frozen=True, slots=True)
class ToGroup:
    group: Group


@dataclass(frozen=True, slots=True)
class ToMailbox:
    """Straight to a voicemail box (*97 and the extension), ringing no one."""

    owner: User | Group


@dataclass(frozen=True, slots=True)
class ToTrunk:
    number: str  # E.164, or an emergency short code as dialled
    trunk: Trunk


@dataclass(frozen=True, slots=True)
class Refused:
    status: int
    reason: str


Route = ToUser | ToGroup | ToIvr | ToMailbox | ToTrunk | Refused
# Where a number of the company's own leads (dialled, or called from outside).
Internal = ToUser | ToGroup | ToIvr | ToMailbox


def route_from_user(
    directory: Directory, company: Company, dialled: str, active_external_calls: int
) -> Route:
    """A call a user placed: an extension, a voicemail box, one of the company's own
    numbers, or external."""
    internal = _extension_target(directory, company, dialled)
    if internal is not None:
        return internal
    if dialled.startswith(VOICEMAIL_DEPOSIT_PREFIX):
        return Refused(404, f"No voicemail box {dialled.removeprefix(VOICEMAIL_DEPOSIT_PREFIX)}")
    if is_emergency_number(dialled, company.country):
        # Never refused by policy or by the external-call limit, and sent as dialled: the
        # carrier routes emergency short codes by the caller's location.
        trunks = directory.trunks(company.id)
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
    own = _own_number_target(directory, company, number)
    if own is not None:
        return own
    policy = OutboundPolicy.create(
        company.allowed_countries, company.blocked_prefixes, company.max_external_calls
    )
    decision = policy.check(number, active_external_calls)
    if not decision.allowed:
        return Refused(403, decision.reason)
    trunks = directory.trunks(company.id)
    if not trunks:
        return Refused(503, "No trunk for external calls")
    return ToTrunk(number, trunks[0])


def route_from_trunk(directory: Directory, company: Company, dialled: str) -> Route:
    """A call the carrier delivered to one of the company's numbers."""
    try:
        number = normalize_number(dialled, company.country)
    except NumberError:
        return Refused(404, "Unknown number")
    target = _own_number_target(directory, company, number)
    return target if target is not None else Refused(404, f"Number {number} not in service")


def _own_number_target(
    directory: Directory, company: Company, number: str
) -> Internal | Refused | None:
    owner = directory.number_owner(number)
    if owner is None or owner.company_id != company.id:
        return None
    target = _extension_target(directory, company, owner.route)
    return target if target is not None else Refused(404, f"Number {number} has no destination")


def _extension_target(directory: Directory, company: Company, dialled: str) -> Internal | None:
    """A user, group or menu at that extension, or the box of *97 and an extension."""
    if dialled.startswith(VOICEMAIL_DEPOSIT_PREFIX):
        extension = dialled.removeprefix(VOICEMAIL_DEPOSIT_PREFIX)
        owner = directory.user(company.id, extension) or directory.group(company.id, extension)
        return ToMailbox(owner) if owner is not None else None
    user = directory.user(company.id, dialled)
    if user is not None:
        return ToUser(user)
    group = directory.group(company.id, dialled)
    if group is not None:
        return ToGroup(group)
    menu = directory.ivr(company.id, dialled)
    if menu is not None:
        return ToIvr(menu)
    return None


def caller_id_of(directory: Directory, company: Company, user: User, trunk: Trunk) -> str:
    """The number shown to people a user calls outside: their own DID, else the trunk's or
    the company's first number."""
    numbers = directory.numbers(company.id)
    for number in numbers:
        if number.route == user.extension:
            return number.number
    if trunk.caller_id:
        return trunk.caller_id
    return numbers[0].number if numbers else user.extension
