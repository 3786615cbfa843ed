"""The live event stream: WebSocket /api/v1/events.

The client authenticates with its access token (``?token=`` — browsers cannot set headers
on a WebSocket — or an ``Authorization: Bearer`` header). The server's first message is

    {"type": "connected", "data": {"stream": "...", "sequence": N, "resync": false}}

then come the company's events meant for this user, each
``{"type", "sequence", "timestamp", "data"}`` (event_feed.py lists them). A client that
reconnects with ``?stream=S&since=N`` (the stream and the last sequence it received) first
gets what it missed; when that is no longer kept (or S is another stream) ``resync`` is
true and the client reloads its state through the REST API.

The client may send ``{"type": "authenticate", "token": "..."}`` with a refreshed access
token; once the token the stream runs on is no longer valid (expired, logged out) the
server closes with code 4401. A client too slow to read its events is closed with 4429:
it reconnects with ``since``, as after any cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from nuage.api.errors import error_body
from nuage.events import EventBus, Subscription, SubscriptionLost
from nuage.pbx.app_sessions import AppSessions, Principal

# The token of an open stream is checked again this often.
TOKEN_CHECK_PERIOD = 30.0

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 4429
CLOSE_STARTING = 1013  # "try again later"

router = APIRouter(tags=["events"])


def _bearer(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("token")
    if token:
        return token
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    return credentials if scheme.lower() == "bearer" and credentials else None


@router.websocket("/events")
async def event_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    sessions: AppSessions | None = getattr(websocket.app.state, "sessions", None)
    bus: EventBus | None = getattr(websocket.app.state, "bus", None)
    if sessions is None or bus is None:
        await _refuse(websocket, CLOSE_STARTING, "starting", "The server is starting")
        return
    token = _bearer(websocket)
    principal = await sessions.authenticate(token) if token else None
    if token is None or principal is None:
        await _refuse(
            websocket, CLOSE_UNAUTHORIZED, "invalid_token", "A valid access token is needed"
        )
        return
    since_text = websocket.query_params.get("since")
    since = int(since_text) if since_text is not None and since_text.isdigit() else None
    if since_text is not None and since is None:
        await _refuse(websocket, 1008, "invalid", "since must be a sequence number", field="since")
        return
    subscription = bus.subscribe(principal.company_id)
    try:
        stream = _Stream(
            websocket, subscription, sessions=sessions, bus=bus, principal=principal, token=token
        )
        await stream.run(since, websocket.query_params.get("stream"))
    finally:
        subscription.close()


async def _refuse(
    websocket: WebSocket, code: int, error: str, message: str, field: str | None = None
) -> None:
    await websocket.send_json({"type": "error", "data": error_body(error, message, field)})
    await websocket.close(code, message)


class _Stream:
    def __init__(
        self,
        websocket: WebSocket,
        subscription: Subscription,
        *,
        sessions: AppSessions,
        bus: EventBus,
        principal: Principal,
        token: str,
    ) -> None:
        self._websocket = websocket
        self._sessions = sessions
        self._bus = bus
        self._subscription = subscription
        self._principal = principal
        self._token = token

    async def run(self, since: int | None, stream: str | None) -> None:
        company_id, user_id = self._principal.company_id, self._principal.user_id
        position = await self._bus.position(company_id)
        missed = None
        if since is not None and stream == self._bus.stream:
            missed = await self._bus.replay(company_id, since)
        resync = since is not None and missed is None
        await self._websocket.send_json(
            {
                "type": "connected",
                "data": {"stream": self._bus.stream, "sequence": position, "resync": resync},
            }
        )
        delivered = position
        if missed is not None:
            for event in missed:
                if event.for_user(user_id):
                    await self._websocket.send_text(event.text)
            delivered = max(position, missed[-1].sequence) if missed else position
        tasks = [
            asyncio.create_task(self._send_live(delivered)),
            asyncio.create_task(self._receive()),
            asyncio.create_task(self._check_token()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                    await task
        closing = next(iter(done)).result()
        if closing is not None and self._websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):
                await self._websocket.close(*closing)

    async def _send_live(self, delivered: int) -> tuple[int, str] | None:
        user_id = self._principal.user_id
        while True:
            try:
                event = await self._subscription.next()
            except SubscriptionLost:
                return CLOSE_TOO_SLOW, "events were lost; reconnect with since"
            if event.sequence <= delivered:
                continue
            delivered = event.sequence
            if event.for_user(user_id):
                await self._websocket.send_text(event.text)

    async def _receive(self) -> tuple[int, str] | None:
        """Token renewals from the client; returns when it goes away."""
        while True:
            try:
                text = await self._websocket.receive_text()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return None
            message = _json_object(text)
            if message.get("type") != "authenticate" or not isinstance(message.get("token"), str):
                continue
            renewed = await self._sessions.authenticate(message["token"])
            if renewed is None or renewed.user_id != self._principal.user_id:
                return CLOSE_UNAUTHORIZED, "invalid token"
            self._principal, self._token = renewed, message["token"]

    async def _check_token(self) -> tuple[int, str] | None:
        # The first check at a random point of the period: streams opened together (every
        # client reconnecting after a restart) would otherwise all be checked at once, a
        # burst of database reads that held up the live events of 1,000 streams by up to
        # half a second (bench/fanout.py).
        delay = random.uniform(0, TOKEN_CHECK_PERIOD)
        while True:
            await asyncio.sleep(delay)
            delay = TOKEN_CHECK_PERIOD
            if await self._sessions.authenticate(self._token) is None:
                return CLOSE_UNAUTHORIZED, "the access token expired or was revoked"


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
