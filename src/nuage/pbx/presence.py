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
from nuage.pbx.calls import Call
from nuage.pbx.listeners import UserListener, UserListeners
from nuage.pbx.location import LocationService
from nuage.pbx.originated import Dialling

LINE_STATES = ("offline", "available", "ringing", "in call", "on hold")


class Presence:
    def __init__(self, location: LocationService, calls: CallEngine) -> None:
        self._location = location
        self._calls = calls
        self._listeners = UserListeners()
        location.listeners.add(self.may_have_changed)
        calls.add_observer(self._call_changed)

    def add_listener(self, listener: UserListener) -> None:
        """``listener(company_id, user_id)`` is called, synchronously, each time a user's
        presence (line state or status) may have changed; it reads the new presence
        itself and ignores non-changes. The server also calls ``may_have_changed`` on
        status changes."""
        self._listeners.add(listener)

    def may_have_changed(self, company_id: int, user_id: int) -> None:
        self._listeners.notify(company_id, user_id)

    def _call_changed(self, call: Call | Dialling, change: str) -> None:
        for user_id in call.user_ids():
            self.may_have_changed(call.company.id, user_id)

    def line_state(self, company_id: int, user_id: int) -> str:
        answered = held = ringing = 0
        for call in self._calls.calls_of_company(company_id):
            leg = call.leg_of(user_id)
            if leg is not None:
                answered += 1
                held += leg.name in call.holding
            elif call.caller_shown_to(user_id) is not None:
                ringing += 1
        if answered:
            return "on hold" if held == answered else "in call"
        if ringing:
            return "ringing"
        if self._location.bindings(company_id, user_id, datetime.now(UTC)):
            return "available"
        return "offline"
