"""The fan-out benchmark's baseline: a bare uvloop WebSocket broadcaster, no framework,
no database, no compression, one frame built once and written to every connection.

    python -m bench.ws_baseline --port 8081

`GET /api/v1/events?...` with an Upgrade is accepted (RFC 6455 handshake) and answered
with a `connected` message; `POST /broadcast` with a JSON body writes that body as one
text frame to every open WebSocket, then answers 204. What it leaves of the fan-out
time is the floor the machine and the clients set: the kernel's loopback, the client
process reading 1,000 sockets, both on the same two cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
from typing import cast

import uvloop

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


def text_frame(payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes([0x81, size]) + payload
    if size < 65536:
        return bytes([0x81, 126]) + size.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + size.to_bytes(8, "big") + payload


class Broadcaster:
    def __init__(self) -> None:
        self.sockets: set[asyncio.Transport] = set()


class _Connection(asyncio.Protocol):
    def __init__(self, hub: Broadcaster) -> None:
        self._hub = hub
        self._buffer = b""
        self._websocket = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self._hub.sockets.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        if self._websocket:
            return  # pongs, a close: nothing to do here
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self._buffer) < end + 4 + length:
                return
            body = self._buffer[end + 4 : end + 4 + length]
            self._buffer = self._buffer[end + 4 + length :]
            self._request(head[0], headers, body)
            if self._websocket:
                return

    def _request(self, line: str, headers: dict[str, str], body: bytes) -> None:
        assert self.transport is not None
        if line.startswith("GET ") and headers.get("upgrade", "").lower() == "websocket":
            key = headers["sec-websocket-key"].encode()
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
            self.transport.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
                + text_frame(b'{"type":"connected","data":{"stream":"bare","sequence":0}}')
            )
            self._websocket = True
            self._hub.sockets.add(self.transport)
        elif line.startswith("POST /broadcast"):
            frame = text_frame(body)
            for socket in self._hub.sockets:
                socket.write(frame)
            self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


async def _main(port: int) -> None:
    hub = Broadcaster()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(hub), "127.0.0.1", port, backlog=2048)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(_main(parser.parse_args().port))


if __name__ == "__main__":
    main()
