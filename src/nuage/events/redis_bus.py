"""The bus of several nodes, through Redis.

Publishing runs one script that numbers the event (INCR), keeps it in the company's
stream (XADD, capped at REPLAY_LIMIT) and sends it to every node (PUBLISH), atomically:
the numbering, the kept history and the live order agree on every node. Each node has
one pattern subscription to all companies' feeds and fans out to its own readers; its
own events reach them the same way, so every reader sees one order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

from nuage.events.bus import REPLAY_LIMIT, Event, Fanout, Subscription, Watcher

log = logging.getLogger(__name__)

_PUBLISH = """
local sequence = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], sequence .. '-0', 'e', ARGV[1])
redis.call('PUBLISH', ARGV[3], sequence .. ' ' .. ARGV[1])
return sequence
"""

# After losing Redis, wait this long (doubling, up to the maximum) before trying again.
_RETRY_FIRST, _RETRY_MAX = 0.2, 5.0


class RedisBus:
    def __init__(
        self, url: str, *, prefix: str = "nuage:", replay_limit: int = REPLAY_LIMIT
    ) -> None:
        # Bytes in and out: event bodies are parsed once, by their reader.
        self._client: redis.Redis = redis.from_url(url, decode_responses=False)
        self._prefix = prefix
        self._replay_limit = replay_limit
        self._publish_script = self._client.register_script(_PUBLISH)
        self._fanout = Fanout()
        self._outgoing: deque[tuple[int, str]] = deque()
        self._wake_publisher = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stream = ""
        self.dropped = 0  # events that could not be published (Redis unreachable)

    @property
    def stream(self) -> str:
        return self._stream

    @property
    def subscriptions(self) -> int:
        return self._fanout.count

    def _key(self, company_id: int, kind: str) -> str:
        return f"{self._prefix}{kind}:{company_id}"

    async def start(self) -> None:
        # Every node names the numbering alike; a new name only once Redis lost it all.
        key = f"{self._prefix}stream"
        await self._client.set(key, secrets.token_hex(8), nx=True)
        stream = cast(bytes, await self._client.get(key))
        self._stream = stream.decode()
        subscribed = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._receive(subscribed)),
            loop.create_task(self._publish_queued()),
        ]
        await subscribed.wait()

    async def close(self) -> None:
        # What was published before closing still goes out, if Redis answers soon.
        for _ in range(200):
            if not self._outgoing:
                break
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fanout.lose_all()
        await self._client.aclose()

    def publish(
        self, company_id: int, type: str, data: dict[str, Any], user_id: int | None = None
    ) -> None:
        body = json.dumps(
            {
                "type": type,
                "timestamp": datetime.now(UTC).isoformat(),
                "data": data,
                "user_id": user_id,
            },
            separators=(",", ":"),
        )
        self._outgoing.append((company_id, body))
        self._wake_publisher.set()

    async def _publish_queued(self) -> None:
        delay = _RETRY_FIRST
        while True:
            await self._wake_publisher.wait()
            self._wake_publisher.clear()
            while self._outgoing:
                batch = list(self._outgoing)
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for company_id, body in batch:
                            await self._publish_script(
                                keys=[self._key(company_id, "seq"), self._key(company_id, "kept")],
                                args=[body, self._replay_limit, self._key(company_id, "feed")],
                                client=pipe,
                            )
                        await pipe.execute()
                except RedisError as exc:
                    # Readers are told by the receiving side that they lost events.
                    log.warning("events not published (%d): %s", len(batch), exc)
                    self.dropped += len(batch)
                    for _ in batch:
                        self._outgoing.popleft()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX)
                    continue
                delay = _RETRY_FIRST
                for _ in batch:
                    self._outgoing.popleft()

    async def _receive(self, subscribed: asyncio.Event) -> None:
        delay = _RETRY_FIRST
        pattern = f"{self._prefix}feed:*"
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                subscribed.set()
                delay = _RETRY_FIRST
                async for message in pubsub.listen():
                    if message["type"] == "pmessage":
                        self._dispatch(message["channel"], message["data"])
            except RedisError as exc:
                log.warning("event feed from Redis lost: %s; reconnecting", exc)
                # Whatever was published meanwhile is gone for the live readers.
                self._fanout.lose_all()
            finally:
                with contextlib.suppress(RedisError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        try:
            company_id = int(channel.rsplit(b":", 1)[1])
            sequence, _, body = data.partition(b" ")
            event = _event(company_id, int(sequence), body)
        except (ValueError, KeyError, TypeError):
            log.warning("malformed event on %r", channel)
            return
        self._fanout.dispatch(event)

    def subscribe(self, company_id: int) -> Subscription:
        return self._fanout.add(company_id)

    def watch(self, watcher: Watcher) -> None:
        self._fanout.watch(watcher)

    async def position(self, company_id: int) -> int:
        return int(await self._client.get(self._key(company_id, "seq")) or 0)

    async def replay(self, company_id: int, after: int) -> list[Event] | None:
        last = await self.position(company_id)
        if after > last:
            return None
        if after == last:
            return []
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._client.xrange(self._key(company_id, "kept"), min=f"{after + 1}-0"),
        )
        events = [
            _event(company_id, int(entry_id.split(b"-")[0]), fields[b"e"])
            for entry_id, fields in entries
        ]
        if not events or events[0].sequence != after + 1:
            return None
        return events


def _event(company_id: int, sequence: int, body: bytes) -> Event:
    fields = json.loads(body)
    return Event(
        company_id,
        sequence,
        fields["type"],
        timestamp=datetime.fromisoformat(fields["timestamp"]),
        data=fields["data"],
        user_id=fields["user_id"],
    )
