"""Conferences (F15): the parties of several calls mixed together.

A user with two calls (typically one on hold and one active) merges them: the parties of
the call they keep and the other party of the call they leave all hear each other
through the mixer; the user's dialog in the call they leave is ended. Every party stays
in its own dialog, on its own relay ports: nobody is re-INVITEd. More calls can be merged
in the same way. A party leaving (hanging up, or hung up by the user through call
control) does not end the conference for the others; the last party left alone is hung
up, since a conference of one is nobody's call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nuage.media.codecs import UnsupportedCodecError
from nuage.media.mixer import ConferenceMixer, Member
from nuage.media.player import FrameClock
from nuage.pbx.dialing import Party

if TYPE_CHECKING:
    from nuage.pbx.calls import Call, Leg

log = logging.getLogger(__name__)


class ConferenceError(Exception):
    """The calls cannot be merged; the message says why."""


@dataclass(slots=True)
class _Seat:
    call: Call
    leg: Leg
    member: Member


class Conference:
    def __init__(self, clock: FrameClock) -> None:
        self._mixer = ConferenceMixer(clock)
        self._seats: list[_Seat] = []

    def __len__(self) -> int:
        return len(self._seats)

    def parties(self) -> list[Party]:
        return [seat.leg.party for seat in self._seats]

    def others(self, leg: Leg) -> list[Party]:
        """Who ``leg``'s party hears."""
        return [seat.leg.party for seat in self._seats if seat.leg is not leg]

    def join(self, call: Call, leg: Leg) -> None:
        """``leg``'s party hears the conference and is heard in it from now on."""
        codecs = call.mix_codecs(leg)
        if codecs is None:
            raise ConferenceError(f"no codec of {leg.party.number} can be mixed")
        receives, codec = codecs
        try:
            member = self._mixer.add(leg.media, receives, codec)
        except UnsupportedCodecError as exc:
            raise ConferenceError(str(exc)) from None
        self._seats.append(_Seat(call, leg, member))
        call.conference = self

    def mute(self, leg: Leg, muted: bool) -> None:
        """A party that holds the conference neither hears it nor is heard (its phone
        may play its own music on hold into the call)."""
        for seat in self._seats:
            if seat.leg is leg:
                seat.member.muted = muted

    def leave(self, leg: Leg) -> None:
        """``leg``'s party is gone (its dialog ended). The others go on; the last one
        left alone is hung up."""
        seat = next((seat for seat in self._seats if seat.leg is leg), None)
        if seat is None:
            return
        self._seats.remove(seat)
        self._mixer.remove(seat.member)
        log.info(
            "call %s: %s left the conference (%d left)",
            seat.call.call_id,
            leg.party.number,
            len(self._seats),
        )
        if not any(other.call is seat.call for other in self._seats):
            seat.call.end_in_conference("left the conference")
        if len(self._seats) == 1:
            last = self._seats[0]
            last.call.drop_from_conference(last.leg)
            return
        # The others' participant lists changed.
        for call in {other.call for other in self._seats}:
            call.engine.changed(call, "conference")

    def forget(self, call: Call) -> None:
        """``call`` is over (hung up by the server, a media timeout): its parties leave."""
        for seat in [seat for seat in self._seats if seat.call is call]:
            self.leave(seat.leg)


async def merge(call: Call, leg: Leg, other_call: Call, other_leg: Leg) -> Conference:
    """``leg``'s party, in both calls (``other_leg`` in ``other_call``), joins them into
    one conference: it stays in ``call`` (resumed if it held it) and leaves
    ``other_call``, whose other party joins. A call already in a conference brings its
    conference: the user then leaves the other call."""
    if other_call is call:
        raise ConferenceError("a call cannot be merged with itself")
    if call.conference is not None and other_call.conference is not None:
        if call.conference is other_call.conference:
            raise ConferenceError("the calls are already in the same conference")
        raise ConferenceError("two conferences cannot be merged")
    if other_call.conference is not None:
        call, leg, other_call, other_leg = other_call, other_leg, call, leg
    for each_call in (call, other_call):
        if each_call.transferring:
            raise ConferenceError("a transfer is in progress")
    moving = other_leg.other
    assert moving is not None
    newcomers = [(other_call, moving)]
    if call.conference is None:
        assert leg.other is not None
        newcomers += [(call, leg), (call, leg.other)]
    for each_call, each_leg in newcomers:
        if each_call.mix_codecs(each_leg) is None:
            raise ConferenceError(f"no codec of {each_leg.party.number} can be mixed")
    conference = call.conference or Conference(call.engine.media.clock)
    for each_call, each_leg in reversed(newcomers):
        conference.join(each_call, each_leg)
    log.info(
        "call %s: %s merged call %s into a conference of %d",
        call.call_id,
        leg.party.number,
        other_call.call_id,
        len(conference),
    )
    await other_call.leave_for_conference(other_leg)
    call.route_media()
    other_call.route_media()
    if leg.name in call.holding:
        await call.resume(leg)
    for each_call in (call, other_call):
        each_call.engine.changed(each_call, "conference")
    return conference
