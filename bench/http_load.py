"""An open-loop HTTP/1.1 load generator, small enough not to be the bottleneck.

Requests go out on a fixed schedule (request i at start + i / rate) whatever the server
does, each on an idle keep-alive connection of a pool (a new one when every connection
is busy), so that a slow server meets the same arrivals as a fast one and its queue
shows in the latency: each latency is measured from the request's *scheduled* time to
the end of its response (Schroeder et al., "Open versus closed", NSDI 2006; wrk2's
"coordinated omission"). The generator's own lateness (sent - scheduled) is kept apart.

Hand-written on asyncio protocols (no httpx: its ~0.5 ms of CPU per request would
compete with the server for the same two cores).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast


class HttpError(Exception):
    pass


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding":
                waiter.set_exception(HttpError("chunked responses are not supported"))
                return
        if len(self._buffer) < end + 4 + length:
            return
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        waiter.set_result((status, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        try:
            return await self._waiter
        finally:
            self._waiter = None


class HttpPool:
    """Keep-alive connections to one server; LIFO, so that idle ones age out first."""

    def __init__(self, host: str, port: int, *, limit: int = 512) -> None:
        self.host, self.port = host, port
        self._idle: list[_Connection] = []
        self._limit = asyncio.Semaphore(limit)
        self.opened = 0

    def build(self, method: str, path: str, token: str | None = None, body: bytes = b"") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if token is not None:
            head += f"Authorization: Bearer {token}\r\n"
        if body or method in ("PUT", "POST", "DELETE"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Connection, self.host, self.port)
        self.opened += 1
        return protocol

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        async with self._limit:
            connection = await self._connection()
            try:
                answer = await connection.request(raw)
            except BaseException:
                if connection.transport is not None:
                    connection.transport.close()
                raise
            self._idle.append(connection)
            return answer

    def close(self) -> None:
        for connection in self._idle:
            if connection.transport is not None:
                connection.transport.close()
        self._idle.clear()


@dataclass(frozen=True, slots=True)
class Sample:
    kind: str
    status: int  # 0: no response (connection failed)
    latency: float  # s, from the scheduled time to the end of the response
    lateness: float  # s, from the scheduled time to the write (the generator's own delay)


async def open_loop(
    pool: HttpPool,
    make: Callable[[int], tuple[str, bytes]],
    rate: float,
    seconds: float,
) -> list[Sample]:
    """Requests `make(i)` -> (kind, raw request) at `rate` per second for `seconds`."""
    # time.monotonic(), not loop.time(): uvloop's clock has 1 ms steps and is read once
    # per loop iteration.
    loop = asyncio.get_running_loop()
    clock = time.monotonic
    count = int(rate * seconds)
    start = clock() + 0.05
    samples: list[Sample] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(kind: str, raw: bytes, at: float) -> None:
        sent = clock()
        try:
            status, _ = await pool.request(raw)
        except (OSError, HttpError):
            status = 0
        samples.append(Sample(kind, status, clock() - at, sent - at))

    for index in range(count):
        at = start + index / rate
        delay = at - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        kind, raw = make(index)
        task = loop.create_task(one(kind, raw, at))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=60)
    for task in pending:
        task.cancel()
    return samples
