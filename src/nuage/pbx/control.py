"""Call control: what a user may do to their own live calls. The REST API and the app
expose exactly this (list my calls, hang up, hold, resume, blind transfer, record, DTMF,
quality, conference); SIP phones reach the same actions with their own buttons and feature codes.

Every action names the call by its id and is checked against the asking user and their
company: another user's call, or another company's, is simply not found.

A click-to-call is the user's call from the start: while their devices ring (a dialling),
then under the same id as the call it becomes; until the target answers, hanging it up
cancels it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nuage.media.quality import QualitySample
from nuage.pbx.call_engine import CallEngine
from nuage.pbx.calls import Call, Leg
from nuage.pbx.conference import ConferenceError, merge
from nuage.pbx.dialing import Party
from nuage.pbx.originated import Dialling, OriginatedInvite


class CallNotFoundError(LookupError):
    """No live call with that id in which the user is a party."""


class CallControlError(Exception):
    """The action cannot be done on this call now; the message says why."""


@dataclass(frozen=True, slots=True)
class LiveCall:
    """One of the user's live calls, as the app shows it."""

    id: str
    direction: str  # internal, inbound, outbound
    incoming: bool  # the user was called (else they placed the call)
    other: Party  # who the user is talking to (or calling); in a conference, the first other
    # "ringing" (not answered yet), "talking", "on hold" (the user holds),
    # "held" (the other party holds), "conference"
    state: str
    answered_at: datetime | None
    recording: bool
    quality: QualitySample | None
    participants: tuple[Party, ...] = ()  # the others in the conference
    recording_since: datetime | None = None


class CallControl:
    def __init__(self, engine: CallEngine) -> None:
        self._engine = engine

    def calls(self, company_id: int, user_id: int) -> list[LiveCall]:
        """The user's live calls."""
        found = []
        diallings = [d for d in self._engine.diallings() if d.company.id == company_id]
        calls: list[Call | Dialling] = [*diallings, *self._engine.calls_of_company(company_id)]
        for call in calls:
            view = self.view(call, user_id)
            if view is not None:
                found.append(view)
        return found

    def call(self, company_id: int, user_id: int, call_id: str) -> LiveCall:
        for view in self.calls(company_id, user_id):
            if view.id == call_id:
                return view
        raise CallNotFoundError(call_id)

    async def hang_up(self, company_id: int, user_id: int, call_id: str) -> None:
        placing = self._click_to_call(company_id, user_id, call_id)
        if placing is not None:
            placing.hang_up()
            return
        call, leg = self._find(company_id, user_id, call_id)
        await call.hang_up(leg)

    async def hold(self, company_id: int, user_id: int, call_id: str) -> None:
        call, leg = self._find(company_id, user_id, call_id)
        if not await call.hold(leg):
            raise CallControlError("the phone did not accept the hold")

    async def resume(self, company_id: int, user_id: int, call_id: str) -> None:
        call, leg = self._find(company_id, user_id, call_id)
        if not await call.resume(leg):
            raise CallControlError("the phone did not accept the resume")

    async def transfer(self, company_id: int, user_id: int, call_id: str, target: str) -> None:
        """Blind transfer: the other party is connected to ``target`` (an extension or a
        number), the user leaves the call once the target answers."""
        call, leg = self._find(company_id, user_id, call_id)
        refused = call.transfer(leg, target)
        if refused is not None:
            raise CallControlError(f"{refused.status} {refused.reason}")

    async def attended_transfer(
        self, company_id: int, user_id: int, call_id: str, other_call_id: str
    ) -> None:
        """Connect the parties of two of the user's calls (typically one on hold and one
        the user made since), then leave both."""
        call, leg = self._find(company_id, user_id, call_id)
        other_call, other_leg = self._find(company_id, user_id, other_call_id)
        if other_call is call:
            raise CallControlError("a call cannot be transferred to itself")
        if not await call.attended_transfer(leg, other_call, other_leg):
            raise CallControlError("the other party's phone did not accept the transfer")

    async def conference(
        self, company_id: int, user_id: int, call_id: str, other_call_id: str
    ) -> None:
        """Merge two of the user's calls into one conference (F15): the user stays in
        ``call_id`` with its party, the other call's party joins them. A call already in
        a conference takes the other call's party in."""
        call, leg = self._find(company_id, user_id, call_id)
        other_call, other_leg = self._find(company_id, user_id, other_call_id)
        try:
            await merge(call, leg, other_call, other_leg)
        except ConferenceError as exc:
            raise CallControlError(str(exc)) from None

    async def start_recording(self, company_id: int, user_id: int, call_id: str) -> None:
        call, leg = self._find(company_id, user_id, call_id)
        problem = await call.start_recording(leg)
        if problem is not None:
            raise CallControlError(problem)

    async def stop_recording(self, company_id: int, user_id: int, call_id: str) -> None:
        call, _ = self._find(company_id, user_id, call_id)
        if not await call.stop_recording():
            raise CallControlError("the call is not being recorded")

    async def send_dtmf(self, company_id: int, user_id: int, call_id: str, digits: str) -> None:
        if not digits or any(d not in "0123456789*#ABCD" for d in digits.upper()):
            raise CallControlError("digits are 0-9, *, # and A-D")
        call, leg = self._find(company_id, user_id, call_id)
        await call.send_digits(leg, digits.upper())

    def quality(self, company_id: int, user_id: int, call_id: str) -> QualitySample | None:
        call, _ = self._find(company_id, user_id, call_id)
        return call.quality.current()

    def _click_to_call(
        self, company_id: int, user_id: int, call_id: str
    ) -> Dialling | OriginatedInvite | None:
        """The user's click-to-call ``call_id`` while its target has not answered: ringing
        their devices, or the call placed from the one that answered."""
        dialling = self._dialling(company_id, user_id, call_id)
        if dialling is not None:
            return dialling
        for call in self._engine.calls_of_company(company_id):
            if (
                call.call_id == call_id
                and call.caller.user_id == user_id
                and call.answered_at is None
                and isinstance(call.tx, OriginatedInvite)
            ):
                return call.tx
        return None

    def _dialling(self, company_id: int, user_id: int, call_id: str) -> Dialling | None:
        for dialling in self._engine.diallings():
            if (dialling.call_id, dialling.company.id, dialling.user_id) == (
                call_id,
                company_id,
                user_id,
            ):
                return dialling
        return None

    def _find(self, company_id: int, user_id: int, call_id: str) -> tuple[Call, Leg]:
        """The answered call and the user's leg in it."""
        if self._dialling(company_id, user_id, call_id) is not None:
            raise CallControlError("the call is not answered yet")
        for call in self._engine.calls_of_company(company_id):
            if call.call_id != call_id:
                continue
            leg = call.leg_of(user_id)
            if leg is not None:
                return call, leg
            if user_id in (call.caller.user_id, call.callee.user_id):
                raise CallControlError("the call is not answered yet")
        raise CallNotFoundError(call_id)

    def view(self, call: Call | Dialling, user_id: int) -> LiveCall | None:
        """The call as ``user_id`` sees it; None if they are not (or no longer) in it."""
        if isinstance(call, Dialling):
            if user_id != call.user_id:
                return None
            return LiveCall(
                id=call.call_id,
                # Only the company's own devices ring yet: routing the target comes after.
                direction="internal",
                incoming=False,
                other=call.target,
                state="ringing",
                answered_at=None,
                recording=False,
                quality=None,
            )
        recordings = self._engine.recordings
        recording_since = recordings.since(call) if recordings is not None else None
        recording = recording_since is not None
        leg = call.leg_of(user_id)
        if leg is not None:
            # In a conference: the others in it, the first one standing for "the other".
            others = tuple(call.conference.others(leg)) if call.conference is not None else ()
            if leg.name in call.holding:
                state = "on hold"
            elif call.conference is not None:
                state = "conference"
            elif leg.other is not None and leg.other.name in call.holding:
                state = "held"
            else:
                state = "talking"
            return LiveCall(
                id=call.call_id,
                direction=call.direction,
                # Leg A is whoever placed the call (their phone, or click-to-call).
                incoming=leg.name != "A",
                other=others[0] if others else (leg.other or leg).party,
                state=state,
                answered_at=call.answered_at,
                recording=recording,
                recording_since=recording_since,
                quality=call.quality.current(),
                participants=others,
            )
        calling = call.caller_shown_to(user_id)
        if calling is None and call.answered_at is None and user_id == call.caller.user_id:
            return LiveCall(
                id=call.call_id,
                direction=call.direction,
                incoming=False,
                other=call.callee,
                state="ringing",
                answered_at=None,
                recording=recording,
                recording_since=recording_since,
                quality=None,
            )
        if calling is None:
            return None
        return LiveCall(
            id=call.call_id,
            direction=call.direction,
            incoming=True,
            other=calling,
            state="ringing",
            answered_at=None,
            recording=recording,
            recording_since=recording_since,
            quality=None,
        )
