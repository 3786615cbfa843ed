"""Statuses (F2, F3): the status each user chose, and what it does to calls to them.

A company's statuses come from its plan file (`[[statuses]]`, or the defaults below).
A user's choice is kept in ``users.status_id`` and takes effect in this process for the
very next call (the directory holds it until its next reload); other processes sharing
the database follow within their directory's poll interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import IntegrityError

from nuage.pbx.directory import Directory
from nuage.pbx.listeners import UserListeners
from nuage.store import repositories
from nuage.store.database import Database
from nuage.store.models import Company, Status, User

__all__ = [
    "BEHAVIOURS",
    "DEFAULT_STATUSES",
    "VOICEMAIL_REASON",
    "DefaultStatus",
    "ForwardOutside",
    "RefuseCall",
    "RingUser",
    "StatusError",
    "StatusService",
    "ToVoicemail",
    "UnknownStatusError",
    "UnknownUserError",
    "call_target",
]

Behaviour = Literal["ring", "voicemail", "forward", "busy"]
BEHAVIOURS: tuple[Behaviour, ...] = ("ring", "voicemail", "forward", "busy")

# The reason phrase of the 480 a "voicemail" status gives when the user's box is off.
VOICEMAIL_REASON = "Not available (voicemail off)"
DND_REASON = "Do not disturb"
# A forward to a colleague follows their own status, up to this many colleagues.
MAX_FORWARDS = 5


@dataclass(frozen=True, slots=True)
class DefaultStatus:
    key: str
    behaviour: Behaviour
    pause_acd: bool
    colour: str
    names: dict[str, str]  # by language: fr, nl, en

    def name(self, language: str) -> str:
        return self.names.get(language, self.names["en"])


# What a plan without [[statuses]] gets, named in the company's language. Migration 0008
# keeps a frozen copy for the companies that existed before it.
DEFAULT_STATUSES: tuple[DefaultStatus, ...] = (
    DefaultStatus(
        "available",
        "ring",
        False,
        "#2e7d32",
        {"fr": "Disponible", "nl": "Beschikbaar", "en": "Available"},
    ),
    DefaultStatus(
        "meeting",
        "voicemail",
        False,
        "#ef6c00",
        {"fr": "En réunion", "nl": "In vergadering", "en": "In a meeting"},
    ),
    DefaultStatus(
        "lunch",
        "voicemail",
        True,
        "#f9a825",
        {"fr": "Pause déjeuner", "nl": "Lunchpauze", "en": "Lunch"},
    ),
    DefaultStatus(
        "dnd",
        "busy",
        True,
        "#c62828",
        {"fr": "Ne pas déranger", "nl": "Niet storen", "en": "Do not disturb"},
    ),
    DefaultStatus(
        "away", "voicemail", True, "#757575", {"fr": "Absent", "nl": "Afwezig", "en": "Away"}
    ),
)


class StatusError(Exception):
    """A status cannot be read or set; the message says why."""


class UnknownUserError(StatusError, LookupError):
    pass


class UnknownStatusError(StatusError, LookupError):
    pass


class StatusService:
    """Read and set users' statuses (what the API's status routes call)."""

    def __init__(self, db: Database, directory: Directory) -> None:
        self._db = db
        self._directory = directory
        # Told when a user's status changes.
        self.listeners = UserListeners()

    def statuses(self, company_id: int) -> list[Status]:
        """The company's statuses, in the order of the app's menu."""
        return self._directory.statuses(company_id)

    def current(self, company_id: int, user_id: int) -> Status:
        """The user's status: the one they chose, else the company's default
        ("Available"). UnknownUserError for a user not in the company."""
        if self._directory.user_by_id(company_id, user_id) is None:
            raise UnknownUserError(f"no user {user_id} in company {company_id}")
        status = self._directory.user_status(company_id, user_id)
        if status is None:
            raise StatusError(f"company {company_id} has no statuses")
        return status

    async def set(self, company_id: int, user_id: int, key: str) -> Status:
        """Put the user in the status named ``key``; in effect for the next call.
        UnknownStatusError names the company's keys; UnknownUserError for a user not in
        the company."""
        if self._directory.user_by_id(company_id, user_id) is None:
            raise UnknownUserError(f"no user {user_id} in company {company_id}")
        status = self._directory.status_by_key(company_id, key)
        if status is None:
            keys = ", ".join(s.key for s in self._directory.statuses(company_id))
            raise UnknownStatusError(f"unknown status {key!r} (statuses: {keys or 'none'})")
        try:
            async with self._db.transaction() as session:
                if not await repositories.set_user_status(session, company_id, user_id, status.id):
                    raise UnknownUserError(f"no user {user_id} in company {company_id}")
                # Other processes reload their directory; this one knows already.
                revision = await repositories.bump_directory_revision(session)
        except IntegrityError:
            # Removed by a plan applied since the directory's last reload.
            raise UnknownStatusError(f"unknown status {key!r}") from None
        self._directory.note_user_status(user_id, status.id, revision)
        self.listeners.notify(company_id, user_id)
        return status


# -- what a call to a user does ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RingUser:
    """The call rings ``user``'s devices (the callee, or a colleague it was forwarded to)."""

    user: User


@dataclass(frozen=True, slots=True)
class ForwardOutside:
    """The call goes to ``number`` (an E.164 number, or what the plan gave) as if
    ``forwarding_user`` had dialled it: routing, policy and the company's limit apply."""

    number: str
    forwarding_user: User


@dataclass(frozen=True, slots=True)
class RefuseCall:
    """The call is refused with ``status`` and ``reason``, recorded with ``outcome``."""

    status: int
    reason: str
    outcome: str
    user: User


@dataclass(frozen=True, slots=True)
class ToVoicemail:
    """The call goes to ``user``'s voicemail (refused with 480 when their box is off)."""

    user: User


CallTarget = RingUser | ForwardOutside | RefuseCall | ToVoicemail


def takes_group_calls(directory: Directory, company: Company, user: User) -> bool:
    """Whether a call to a group of ``user``'s rings them: their status rings and does
    not pause group calls."""
    status = directory.user_status(company.id, user.id)
    return status is None or (status.behaviour == "ring" and not status.pause_acd)


def call_target(directory: Directory, company: Company, callee: User) -> CallTarget:
    """What a new call to ``callee`` does, by their status: ring them, be refused, or be
    forwarded. A forward to a colleague follows the colleague's status in turn; a
    forward that leads back to someone already on the way rings the last one reached."""
    user = callee
    seen = {callee.id}
    for _ in range(MAX_FORWARDS + 1):
        status = directory.user_status(company.id, user.id)
        behaviour = status.behaviour if status is not None else "ring"
        if behaviour == "busy":
            return RefuseCall(486, DND_REASON, "busy", user)
        if behaviour == "voicemail":
            return ToVoicemail(user)
        if behaviour != "forward" or status is None or not status.forward_to:
            return RingUser(user)
        colleague = directory.user(company.id, status.forward_to)
        if colleague is None:
            return ForwardOutside(status.forward_to, user)
        if colleague.id in seen:
            return RingUser(user)
        seen.add(colleague.id)
        user = colleague
    return RingUser(user)
