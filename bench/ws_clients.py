"""Many WebSocket clients of the event stream in one process, as cheap as can be: the
client side of the presence fan-out benchmark (bench/fanout.py), run in its own process
so that it does not share the server's event loop.

    python -m bench.ws_clients --target 127.0.0.1:8080 --tokens FILE --out FILE [--deflate]

One access token per line of FILE, one connection per token (to the targets in turn).
Each connection is an asyncio protocol with a hand-written RFC 6455 client (handshake,
unmasked server frames, pongs, permessage-deflate as browsers offer it): about 5 µs per
message where the `websockets` client's reader task costs several times that, which on
two shared cores would be added to every delivery. The arrival time of a message is
time.monotonic() when its bytes were handed to the protocol (CLOCK_MONOTONIC: the same
clock in every process of the machine, so it compares with the sender's).

Prints `ready CONNECTED FAILED` once every connection got its `connected` message, then
records until a line `stop` (or end of file) on stdin, and writes what arrived to
--out as JSON: [connection, arrival, sequence, type, user_id, status key] per event.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any, cast

import uvloop

_CLOCK = time.monotonic
# Chrome's and Firefox's offer.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


class Client(asyncio.Protocol):
    def __init__(self, index: int, host: str, path: str, deflate: bool) -> None:
        self.index = index
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n"
            + (f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if deflate else "")
            + "\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.messages: list[tuple[float, bytes]] = []
        self.close_code: int | None = None
        self.closed_at: float | None = None
        self._open = False
        self._buffer = b""
        self._inflater: Any = None
        self._wbits = 15
        self._reset_inflater = False
        self._fragments: list[bytes] = []
        self._compressed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed_at is None:
            self.closed_at = _CLOCK()
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(f"lost before connected: {exc}"))

    def _handshake(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise ConnectionError(lines[0])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() != "sec-websocket-extensions":
                continue
            params = [p.strip() for p in value.split(";")]
            if params[0] != "permessage-deflate":
                continue
            for param in params[1:]:
                key, _, number = param.partition("=")
                if key == "server_max_window_bits":
                    self._wbits = int(number)
                elif key == "server_no_context_takeover":
                    self._reset_inflater = True
            self._inflater = zlib.decompressobj(-self._wbits)

    def data_received(self, data: bytes) -> None:
        now = _CLOCK()
        buffer = self._buffer + data if self._buffer else data
        if not self._open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = buffer
                return
            try:
                self._handshake(buffer[:end])
            except ConnectionError as refused:
                self.connected.set_exception(refused)
                assert self.transport is not None
                self.transport.close()
                return
            self._open = True
            buffer = buffer[end + 4 :]
        position, size = 0, len(buffer)
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length, header = second & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
            if size - position < header + length:
                break
            payload = buffer[position + header : position + header + length]
            position += header + length
            opcode = first & 0x0F
            if opcode in (0, 1, 2):
                if opcode:
                    self._compressed = bool(first & 0x40)
                self._fragments.append(payload)
                if first & 0x80:
                    self._message(now)
            elif opcode == 9:
                self._send(0xA, payload)
            elif opcode == 8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.closed_at = now
                self._send(0x8, payload[:2])
                assert self.transport is not None
                self.transport.close()
                return
        self._buffer = buffer[position:]

    def _message(self, now: float) -> None:
        payload = self._fragments[0] if len(self._fragments) == 1 else b"".join(self._fragments)
        self._fragments = []
        if self._compressed:
            payload = self._inflater.decompress(payload + b"\x00\x00\xff\xff")
            if self._reset_inflater:
                self._inflater = zlib.decompressobj(-self._wbits)
        if not self.connected.done():
            self.connected.set_result(None)
            return
        self.messages.append((now, payload))

    def _send(self, opcode: int, payload: bytes) -> None:
        """A masked control frame (pong, close)."""
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


async def _connect(
    index: int, target: tuple[str, int], token: str, deflate: bool, limit: asyncio.Semaphore
) -> Client | None:
    host, port = target
    path = f"/api/v1/events?token={token}"
    loop = asyncio.get_running_loop()
    async with limit:
        try:
            _, client = await loop.create_connection(
                lambda: Client(index, f"{host}:{port}", path, deflate), host, port
            )
            await asyncio.wait_for(client.connected, 60)
        except (OSError, ConnectionError, TimeoutError) as failed:
            print(f"connection {index}: {failed}", file=sys.stderr, flush=True)
            return None
    return client


def _parse(client: Client) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for arrival, payload in client.messages:
        try:
            message = json.loads(payload)
        except ValueError:
            continue
        data = message.get("data") or {}
        status = data.get("status")
        key = status.get("key") if isinstance(status, dict) else None
        rows.append(
            [
                client.index,
                arrival,
                message.get("sequence"),
                message.get("type"),
                data.get("user_id"),
                key,
            ]
        )
    return rows


async def _main(args: argparse.Namespace, tokens: list[str]) -> None:
    targets = []
    for target in args.target.split(","):
        host, _, port = target.rpartition(":")
        targets.append((host, int(port)))
    limit = asyncio.Semaphore(args.concurrency)
    clients = await asyncio.gather(
        *(
            _connect(i, targets[i % len(targets)], token, args.deflate, limit)
            for i, token in enumerate(tokens)
        )
    )
    live = [c for c in clients if c is not None]
    # Nothing to collect meanwhile: no collector pauses in the measurement.
    gc.collect()
    gc.freeze()
    gc.disable()
    print(f"ready {len(live)} {len(clients) - len(live)}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line or line.strip() == b"stop":
            break
    rows = [row for client in live for row in _parse(client)]
    closed = [[c.index, c.closed_at, c.close_code] for c in live if c.closed_at is not None]
    for client in live:
        if client.transport is not None:
            client.transport.close()
    await asyncio.to_thread(
        Path(args.out).write_text,
        json.dumps({"connected": len(live), "arrivals": rows, "closed": closed}),
    )
    print("done", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="host:port[,host:port...]")
    parser.add_argument("--tokens", required=True, help="one access token per line")
    parser.add_argument("--out", required=True)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--concurrency", type=int, default=50, help="handshakes at once")
    args = parser.parse_args()
    uvloop.run(_main(args, Path(args.tokens).read_text().split()))


if __name__ == "__main__":
    main()
