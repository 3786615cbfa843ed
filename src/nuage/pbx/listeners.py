"""Listeners told that something about a user changed: (company id, user id). Services
that change a user's presence (registrations, statuses) tell them; a failing listener is
logged and does not stop the others, nor the change."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

UserListener = Callable[[int, int], None]


class UserListeners:
    def __init__(self) -> None:
        self._listeners: list[UserListener] = []

    def add(self, listener: UserListener) -> None:
        self._listeners.append(listener)

    def notify(self, company_id: int, user_id: int) -> None:
        for listener in self._listeners:
            try:
                listener(company_id, user_id)
            except Exception:
                log.exception("listener failed for user %d of company %d", user_id, company_id)
