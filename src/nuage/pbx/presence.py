"""A user's line state (issue 4, presence): what their phones are doing, from their
registrations and the live calls. The status they chose (statuses.py) completes it.

- "offline": no device registered;
- "available": registered, in no call;
- "ringing": a call to them rings and none is answered yet;
- "in call": in an answered call;
- "on hold": every answered call of theirs is on hold by them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nuage.pbx.call_engine import CallEngine
from nuage.pbx.location import LocationService

LINE_STATES = ("offline", "available", "ringing", "in call", "on hold")


class Presence:
    def __init__(self, location: LocationService, calls: CallEngine) -> None:
        self._location = location
        self._calls = calls

    def line_state(self, company_id: int, user_id: int) -> str:
        answered = held = ringing = 0
        for call in self._calls.live_calls():
            if call.company.id != company_id:
                continue
            leg = call.leg_of(user_id)
            if leg is not None:
                answered += 1
                held += leg.name in call.holding
            elif call.answered_at is None and call.callee.user_id == user_id:
                ringing += 1
        if answered:
            return "on hold" if held == answered else "in call"
        if ringing:
            return "ringing"
        if self._location.bindings(company_id, user_id, datetime.now(UTC)):
            return "available"
        return "offline"
