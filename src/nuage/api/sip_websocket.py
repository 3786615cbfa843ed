"""SIP over WebSocket at /sip (RFC 7118): the web softphone's signalling connection.

A thin adapter between the HTTP server's WebSocket and the SIP transport layer
(:mod:`nuage.sip.websocket`): it accepts connections that ask for the ``sip`` subprotocol
(any other handshake is refused, HTTP 403), opens a flow for each and carries messages
both ways. SIP itself authenticates the client (digest, as on UDP and TCP). Until the SIP
endpoint is up, and when the server is at its connection limit, the connection is closed
with 1013 ("try again later").
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect

from nuage.sip.endpoint import SipEndpoint
from nuage.sip.websocket import WebSocketFlow

SUBPROTOCOL = "sip"

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TRY_AGAIN = 1013
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_SLOW = 1008

# Bytes of SIP queued for one client before it is deemed not to read: a burst of NOTIFYs
# fits many times over, a client that stopped reading does not grow our memory.
MAX_QUEUED = 1024 * 1024

router = APIRouter(tags=["sip"])


def serve_sip(app: FastAPI, endpoint: SipEndpoint) -> None:
    """From now on /sip connections go to ``endpoint``'s transport layer."""
    app.state.sip_endpoint = endpoint


class _Outbox:
    """What the transport layer sends to one client, until the writer task sends it."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued = 0
        self._closing = False
        self.close_code = CLOSE_GOING_AWAY

    def put(self, data: bytes) -> bool:
        if self._closing:
            return False
        if self._queued + len(data) > MAX_QUEUED:
            self.close_code = CLOSE_TOO_SLOW
            return False
        self._queued += len(data)
        self._queue.put_nowait(data)
        return True

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self.close_code == CLOSE_TOO_SLOW:
            # It does not read: what is queued would only hold up the close.
            while not self._queue.empty():
                self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def get(self) -> bytes | None:
        data = await self._queue.get()
        if data is not None:
            self._queued -= len(data)
        return data


@router.websocket("/sip")
async def sip_websocket(websocket: WebSocket) -> None:
    if SUBPROTOCOL not in websocket.scope.get("subprotocols", ()):
        # Closed before being accepted: the handshake is refused.
        await websocket.close(CLOSE_PROTOCOL_ERROR)
        return
    await websocket.accept(subprotocol=SUBPROTOCOL)
    endpoint: SipEndpoint | None = getattr(websocket.app.state, "sip_endpoint", None)
    client = websocket.client
    local = websocket.scope.get("server")
    if endpoint is None or client is None or local is None:
        await websocket.close(CLOSE_TRY_AGAIN, "SIP is not ready")
        return
    outbox = _Outbox()
    flow = endpoint.open_websocket(
        str(websocket.scope.get("scheme", "ws")),
        (client.host, client.port),
        (str(local[0]), int(local[1])),
        outbox.put,
        outbox.close,
    )
    if flow is None:
        await websocket.close(CLOSE_TRY_AGAIN, "Too many connections")
        return
    try:
        await _relay(websocket, flow, outbox)
    finally:
        flow.connection_lost()


async def _relay(websocket: WebSocket, flow: WebSocketFlow, outbox: _Outbox) -> None:
    """Until the client goes away or the transport layer closes the connection."""
    tasks = [
        asyncio.create_task(_read(websocket, flow)),
        asyncio.create_task(_write(websocket, outbox)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                await task


async def _read(websocket: WebSocket, flow: WebSocketFlow) -> None:
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        # RFC 7118 section 5.1: text messages are UTF-8, binary ones any bytes.
        flow.receive(text.encode() if text is not None else message.get("bytes") or b"")


async def _write(websocket: WebSocket, outbox: _Outbox) -> None:
    while True:
        data = await outbox.get()
        try:
            if data is None:
                await websocket.close(outbox.close_code)
                return
            try:
                text = data.decode()
            except UnicodeDecodeError:
                # A body that is not UTF-8 can only travel in a binary message.
                await websocket.send_bytes(data)
            else:
                await websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
