"""Both buses against the same contract: the in-process one, and the Redis one against
the machine's Redis (each test under its own key prefix)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as redis

from nuage.events import Event, EventBus, SubscriptionLost
from nuage.events.bus import BACKLOG_LIMIT
from nuage.events.memory import InProcessBus
from nuage.events.redis_bus import RedisBus

REDIS_URL = os.environ.get("NUAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _redis_bus(prefix: str, replay_limit: int) -> RedisBus:
    bus = RedisBus(REDIS_URL, prefix=prefix, replay_limit=replay_limit)
    await bus.start()
    return bus


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"test-{uuid.uuid4().hex}:"
    yield prefix
    client = redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


BusFactory = Callable[..., Awaitable[EventBus]]


@pytest.fixture(params=["memory", "redis"])
async def new_bus(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[BusFactory]:
    """Makes buses of the parameter's kind; every one is closed at the end."""
    buses: list[EventBus] = []

    async def make(replay_limit: int = 1000) -> EventBus:
        bus: EventBus
        if request.param == "memory":
            bus = InProcessBus(replay_limit=replay_limit)
            await bus.start()
        else:
            bus = await _redis_bus(prefix, replay_limit)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


async def test_events_are_numbered_and_delivered_in_order(
    new_bus: BusFactory,
) -> None:
    bus = await new_bus()
    subscription = bus.subscribe(7)
    other_company = bus.subscribe(8)
    for n in range(5):
        bus.publish(7, "test.counted", {"n": n})
    bus.publish(7, "test.private", {"n": 5}, user_id=42)
    events = [await asyncio.wait_for(subscription.next(), 2) for _ in range(6)]
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.data["n"] for e in events] == [0, 1, 2, 3, 4, 5]
    assert events[5].user_id == 42 and events[5].for_user(42) and not events[5].for_user(41)
    assert events[0].for_user(41)
    assert '"type":"test.counted"' in events[0].text and '"sequence":1' in events[0].text
    assert await bus.position(7) == 6
    assert await bus.position(8) == 0
    # Nothing of company 7 reaches company 8's reader.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(other_company.next(), 0.2)


async def test_replay_gives_what_was_missed_or_asks_for_a_resync(
    new_bus: BusFactory,
) -> None:
    bus = await new_bus(replay_limit=10)
    subscription = bus.subscribe(3)
    for n in range(25):
        bus.publish(3, "test.counted", {"n": n})
    for _ in range(25):
        await asyncio.wait_for(subscription.next(), 2)
    missed = await bus.replay(3, 20)
    assert missed is not None and [e.data["n"] for e in missed] == [20, 21, 22, 23, 24]
    assert await bus.replay(3, 25) == []
    assert await bus.replay(3, 15) is not None  # the last ten are kept
    assert await bus.replay(3, 14) is None  # event 15 is gone
    assert await bus.replay(3, 26) is None  # a sequence from another numbering


async def test_a_reader_that_falls_behind_is_told_it_lost_events(
    new_bus: BusFactory,
) -> None:
    bus = await new_bus()
    slow = bus.subscribe(5)
    # Through Redis, the events reach the node a little later: watched, once the last
    # has come, every subscription has it.
    burst_over = asyncio.Event()

    def watch(event: Event) -> None:
        if event.data["n"] == BACKLOG_LIMIT:
            burst_over.set()

    bus.watch(watch)
    for n in range(BACKLOG_LIMIT + 1):
        bus.publish(5, "test.counted", {"n": n})
    await asyncio.wait_for(burst_over.wait(), 10)
    assert slow.lost
    fast = bus.subscribe(5)
    bus.publish(5, "test.counted", {"n": "last"})
    # A reader keeping up gets everything published since it subscribed.
    assert (await asyncio.wait_for(fast.next(), 5)).data["n"] == "last"
    with pytest.raises(SubscriptionLost):
        await asyncio.wait_for(slow.next(), 2)
    slow.close()
    fast.close()


async def test_a_watcher_sees_every_companys_events(new_bus: BusFactory) -> None:
    bus = await new_bus()
    seen: list[tuple[int, str, int | None]] = []
    bus.watch(lambda event: seen.append((event.company_id, event.type, event.user_id)))

    def fail(event: Event) -> None:
        raise RuntimeError(event.type)

    # A watcher that fails keeps neither the others nor the readers from the event.
    bus.watch(fail)
    reader = bus.subscribe(4)
    bus.publish(3, "test.first", {})
    bus.publish(4, "test.second", {}, user_id=7)
    assert (await asyncio.wait_for(reader.next(), 2)).type == "test.second"
    assert seen == [(3, "test.first", None), (4, "test.second", 7)]


async def test_closed_subscriptions_get_nothing_more(
    new_bus: BusFactory,
) -> None:
    bus = await new_bus()
    subscription, watcher = bus.subscribe(1), bus.subscribe(1)
    subscription.close()
    bus.publish(1, "test.counted", {})
    assert (await asyncio.wait_for(watcher.next(), 2)).sequence == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscription.next(), 0.1)


async def test_two_redis_nodes_see_each_others_events_in_one_order(prefix: str) -> None:
    first, second = await _redis_bus(prefix, 100), await _redis_bus(prefix, 100)
    try:
        assert first.stream == second.stream
        on_first, on_second = first.subscribe(9), second.subscribe(9)
        watched: list[int] = []
        second.watch(lambda event: watched.append(event.sequence))
        for n in range(10):
            (first if n % 2 else second).publish(9, "test.counted", {"n": n})
        seen_first = [await asyncio.wait_for(on_first.next(), 2) for _ in range(10)]
        seen_second = [await asyncio.wait_for(on_second.next(), 2) for _ in range(10)]
        assert [e.sequence for e in seen_first] == list(range(1, 11))
        assert [(e.sequence, e.data) for e in seen_first] == [
            (e.sequence, e.data) for e in seen_second
        ]
        # Each node's own events keep their order.
        from_first = [e.data["n"] for e in seen_first if e.data["n"] % 2]
        assert from_first == sorted(from_first)
        # Watchers too see the other node's events.
        assert watched == [e.sequence for e in seen_second]
        replayed = await second.replay(9, 0)
        assert replayed is not None and [e.text for e in replayed] == [e.text for e in seen_first]
    finally:
        await first.close()
        await second.close()
