"""What both buses share: the event, the subscription a connection reads, the fan-out
to a node's subscriptions, and the interface.

A company has one feed. Its events are numbered 1, 2, 3... in publishing order, the same
on every node; the feed's ``stream`` names the numbering, which starts over when the bus
loses its history (a restart without Redis, Redis emptied). A client reconnecting with a
``stream`` and a ``sequence`` gets what it missed from the last ``REPLAY_LIMIT`` events of
its company, or is told to resync.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

# How many of a company's last events are kept for reconnecting clients.
REPLAY_LIMIT = 1000
# Events a subscription may hold unread; past it the reader is too slow and is dropped
# (it reconnects and replays, or resyncs), rather than the node buffering without bound.
BACKLOG_LIMIT = 2000


@dataclass(frozen=True)
class Event:
    company_id: int
    sequence: int
    type: str
    timestamp: datetime
    data: dict[str, Any]
    # Delivered to this user only (their calls, call log, favorites); None: the company.
    user_id: int | None = None

    @functools.cached_property
    def text(self) -> str:
        """The JSON sent to clients: made once however many connections receive it, and
        only if one does (most events of a busy node are kept for replay, never read)."""
        return json.dumps(
            {
                "type": self.type,
                "sequence": self.sequence,
                "timestamp": self.timestamp.isoformat(timespec="milliseconds"),
                "data": self.data,
            },
            separators=(",", ":"),
        )

    def for_user(self, user_id: int) -> bool:
        return self.user_id is None or self.user_id == user_id


class SubscriptionLost(Exception):
    """Events were lost for this subscription (its reader fell behind, or the bus lost its
    connection): the reader must replay from its last sequence, or resync."""


class Subscription:
    """A company's live events for one reader, in order."""

    def __init__(self, company_id: int, fanout: Fanout) -> None:
        self.company_id = company_id
        self._fanout = fanout
        self._events: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._lost = False

    def deliver(self, event: Event) -> None:
        if self._lost:
            return
        if len(self._events) >= BACKLOG_LIMIT:
            self.lose()
            return
        self._events.append(event)
        self._ready.set()

    @property
    def lost(self) -> bool:
        """Events were lost: ``next`` raises SubscriptionLost once the rest is read."""
        return self._lost

    def lose(self) -> None:
        self._lost = True
        self._events.clear()
        self._ready.set()

    async def next(self) -> Event:
        while not self._events:
            if self._lost:
                raise SubscriptionLost
            self._ready.clear()
            await self._ready.wait()
        return self._events.popleft()

    def close(self) -> None:
        self._fanout.remove(self)


Watcher = Callable[[Event], None]


class Fanout:
    """A node's subscriptions, by company, and its watchers of every company's events."""

    def __init__(self) -> None:
        self._subscriptions: defaultdict[int, set[Subscription]] = defaultdict(set)
        self._watchers: list[Watcher] = []

    def watch(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def add(self, company_id: int) -> Subscription:
        subscription = Subscription(company_id, self)
        self._subscriptions[company_id].add(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        subscribers = self._subscriptions.get(subscription.company_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscriptions[subscription.company_id]

    def dispatch(self, event: Event) -> None:
        for subscription in self._subscriptions.get(event.company_id, ()):
            subscription.deliver(event)
        for watcher in self._watchers:
            try:
                watcher(event)
            except Exception:
                log.exception("event watcher failed on %s", event.type)

    def lose_all(self) -> None:
        for subscribers in self._subscriptions.values():
            for subscription in subscribers:
                subscription.lose()

    @property
    def count(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscriptions.values())


class EventBus(Protocol):
    @property
    def stream(self) -> str:
        """The name of the numbering the sequences belong to."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def publish(
        self, company_id: int, type: str, data: dict[str, Any], user_id: int | None = None
    ) -> None:
        """Queue an event; never waits. Events of one process keep their order."""
        ...

    def subscribe(self, company_id: int) -> Subscription:
        """The company's events published from now on."""
        ...

    def watch(self, watcher: Watcher) -> None:
        """Call ``watcher`` with every company's events as this node receives them (its
        own too): for what a node keeps that other nodes' changes move."""
        ...

    async def position(self, company_id: int) -> int:
        """The sequence of the company's last event (0: none yet)."""
        ...

    async def replay(self, company_id: int, after: int) -> list[Event] | None:
        """The company's events after sequence ``after``, up to the last one; None when
        some of them are no longer kept (the reader must resync)."""
        ...
