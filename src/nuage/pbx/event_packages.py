"""What a user looks like to the phones that subscribe to them: the dialog package (RFC
4235, what busy-lamp-field keys show) from the live calls, presence (RFC 3856, PIDF)
from their line state and the status they chose, as the app shows them, and the
message summary (RFC 3842, the message-waiting lamp) of their voicemail box.

Each package computes a comparable state (the subscription manager sends a NOTIFY only
when it changes) and renders it as the document the phone asked for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from nuage.pbx.call_engine import CallEngine
from nuage.pbx.calls import Call
from nuage.pbx.dialing import Party
from nuage.pbx.directory import Directory
from nuage.pbx.message_waiting import MessageWaiting
from nuage.pbx.presence import Presence
from nuage.pbx.voicemail.store import MessageCounts
from nuage.sip.event_bodies import (
    DIALOG_INFO,
    MESSAGE_SUMMARY,
    PIDF,
    DialogInfo,
    Direction,
    Identity,
    dialog_info,
    message_summary,
    pidf,
)
from nuage.store.models import Company, Status, User

# A user's live dialogs, in id order (so that equal states compare equal).
DialogState = tuple[DialogInfo, ...]


class DialogPackage:
    """The dialog event package: one ``<dialog>`` per call of the user, early while it
    rings (either way), confirmed once answered; a call that ended is reported
    terminated once, in the next document, then left out."""

    event = "dialog"
    content_type = DIALOG_INFO

    def __init__(self, calls: CallEngine) -> None:
        self._calls = calls

    def may_watch(self, subscriber: User, target: User) -> bool:
        return True

    async def state(self, company: Company, user: User) -> DialogState:
        dialogs = [
            dialog
            for call in self._calls.calls_of_company(company.id)
            if (dialog := _dialog_of(call, user.id, company.domain)) is not None
        ]
        return tuple(sorted(dialogs, key=lambda dialog: dialog.id))

    def body(
        self, entity: str, version: int, state: DialogState, previous: DialogState | None
    ) -> bytes:
        current = {dialog.id for dialog in state}
        ended = [
            DialogInfo(dialog.id, "terminated", dialog.direction, dialog.remote)
            for dialog in previous or ()
            if dialog.id not in current
        ]
        return dialog_info(entity, version, [*state, *ended])


def _dialog_of(call: Call, user_id: int, domain: str) -> DialogInfo | None:
    """The user's dialog in ``call``, as their own phone would describe it."""
    leg = call.leg_of(user_id)
    if leg is not None:
        other = leg.other.party if leg.other is not None else None
        # Leg A is the dialog of whoever placed the call; the other legs were called.
        direction: Direction = "initiator" if leg.name == "A" else "recipient"
        return DialogInfo(
            _dialog_id(call, user_id), "confirmed", direction, _identity(other, domain)
        )
    calling = call.caller_shown_to(user_id)
    if calling is not None:
        return DialogInfo(
            _dialog_id(call, user_id), "early", "recipient", _identity(calling, domain)
        )
    if call.answered_at is None and call.caller.user_id == user_id:
        return DialogInfo(
            _dialog_id(call, user_id), "early", "initiator", _identity(call.callee, domain)
        )
    return None


def _dialog_id(call: Call, user_id: int) -> str:
    # Stable for the call's life, and not its Call-ID: with the Call-ID and tags, a
    # colleague's phone could try to take over the call (Replaces).
    digest = hashlib.blake2s(f"{call.call_id}/{user_id}".encode(), digest_size=8)
    return digest.hexdigest()


def _identity(party: Party | None, domain: str) -> Identity | None:
    if party is None:
        return None
    return Identity(f"sip:{party.number}@{domain}", party.name)


@dataclass(frozen=True, slots=True)
class PresenceState:
    is_open: bool
    note: str
    activities: tuple[str, ...]


# What the line is doing says more than the status while it rings or talks.
_LINE_NOTES = {
    "offline": "Offline",
    "ringing": "Ringing",
    "in call": "On the phone",
    "on hold": "On hold",
}
# The default statuses (statuses.py) as RFC 4480 activities; another status that refuses
# calls shows as busy.
_STATUS_ACTIVITIES = {"meeting": "meeting", "lunch": "meal", "dnd": "busy", "away": "away"}


def presence_state(line: str, status: Status | None) -> PresenceState:
    """What a user with this line state (presence.py) and status looks like."""
    activities: set[str] = set()
    if line in ("in call", "on hold"):
        activities.add("on-the-phone")
    if status is not None:
        activity = _STATUS_ACTIVITIES.get(status.key)
        if activity is None and status.behaviour == "busy":
            activity = "busy"
        if activity is not None:
            activities.add(activity)
    rings = status is None or status.behaviour == "ring"
    note = _LINE_NOTES.get(line) or (status.name if status is not None else "Available")
    return PresenceState(line != "offline" and rings, note, tuple(sorted(activities)))


class PresencePackage:
    """The presence package: open while the user is registered and their status lets
    calls ring them, closed otherwise; on the phone (RFC 4480) during a call; the note
    says what the line does, or the status's name when the line is free."""

    event = "presence"
    content_type = PIDF

    def __init__(self, presence: Presence, directory: Directory) -> None:
        self._presence = presence
        self._directory = directory

    def may_watch(self, subscriber: User, target: User) -> bool:
        return True

    async def state(self, company: Company, user: User) -> PresenceState:
        return presence_state(
            self._presence.line_state(company.id, user.id),
            self._directory.user_status(company.id, user.id),
        )

    def body(
        self, entity: str, version: int, state: PresenceState, previous: PresenceState | None
    ) -> bytes:
        return pidf(entity, is_open=state.is_open, note=state.note, activities=state.activities)


class MessageSummaryPackage:
    """The message-summary package: how many voice messages of the user's box are new
    and old. Only for the box's owner: a phone watches its own user's lamp."""

    event = "message-summary"
    content_type = MESSAGE_SUMMARY

    def __init__(self, waiting: MessageWaiting) -> None:
        self._waiting = waiting

    def may_watch(self, subscriber: User, target: User) -> bool:
        return subscriber.id == target.id

    async def state(self, company: Company, user: User) -> MessageCounts:
        return await self._waiting.counts(company.id, user.id)

    def body(
        self, entity: str, version: int, state: MessageCounts, previous: MessageCounts | None
    ) -> bytes:
        return message_summary(entity, state.new, state.old)
