"""The bus of a single node: events numbered and kept in memory."""

from __future__ import annotations

import secrets
from collections import defaultdict, deque
from datetime import UTC, datetime
from typing import Any

from nuage.events.bus import REPLAY_LIMIT, Event, Fanout, Subscription, Watcher


class InProcessBus:
    def __init__(self, *, replay_limit: int = REPLAY_LIMIT) -> None:
        # A new numbering per process: a client of the previous one must resync.
        self._stream = secrets.token_hex(8)
        self._fanout = Fanout()
        self._sequences: defaultdict[int, int] = defaultdict(int)
        self._kept: defaultdict[int, deque[Event]] = defaultdict(lambda: deque(maxlen=replay_limit))

    @property
    def stream(self) -> str:
        return self._stream

    @property
    def subscriptions(self) -> int:
        return self._fanout.count

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._fanout.lose_all()

    def publish(
        self, company_id: int, type: str, data: dict[str, Any], user_id: int | None = None
    ) -> None:
        self._sequences[company_id] += 1
        event = Event(
            company_id,
            self._sequences[company_id],
            type,
            timestamp=datetime.now(UTC),
            data=data,
            user_id=user_id,
        )
        self._kept[company_id].append(event)
        self._fanout.dispatch(event)

    def subscribe(self, company_id: int) -> Subscription:
        return self._fanout.add(company_id)

    def watch(self, watcher: Watcher) -> None:
        self._fanout.watch(watcher)

    async def position(self, company_id: int) -> int:
        return self._sequences.get(company_id, 0)

    async def replay(self, company_id: int, after: int) -> list[Event] | None:
        last = self._sequences.get(company_id, 0)
        if after > last:
            return None
        kept = self._kept.get(company_id)
        if after == last or kept is None:
            return [] if after == last else None
        if kept[0].sequence > after + 1:
            return None
        return [event for event in kept if event.sequence > after]
