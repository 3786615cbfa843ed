"""The live event stream (WebSocket /api/v1/events) against a server in this process,
with baresip phones making the calls: presence, call events, the call log, favorites,
reconnection with replay or resync, and authentication."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from e2e.server import DOMAIN
from e2e.test_call_control import ids, server, three_phones
from e2e.test_transfer import BOB_TONE, _phone
from nuage.api import events
from nuage.server import NuageServer
from peers.baresip import BaresipPhone

__all__ = ["server"]

PASSWORDS = {"1001": "app-1001", "1002": "app-1002", "1003": "app-1003"}
EMAILS = {
    "1001": "elodie@acme.example",
    "1002": "lucas@acme.example",
    "1003": "camille@acme.example",
}


class EventClient:
    """A WebSocket client of the event stream that keeps what it received, with the time
    each message arrived."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.received: list[tuple[float, dict[str, Any]]] = []
        self._new = asyncio.Event()
        # Where the next wait_for starts looking: events are awaited in their order.
        self._cursor = 0
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for text in self.connection:
                self.received.append((time.monotonic(), json.loads(text)))
                self._new.set()
        except ConnectionClosed:
            pass
        self._new.set()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [message for _, message in self.received]

    async def wait_for(
        self, type: str, within: float = 5.0, **data: object
    ) -> tuple[float, dict[str, Any]]:
        """The next message of ``type`` whose data has the given items (after the one
        the last wait_for returned); its arrival."""
        deadline = time.monotonic() + within
        while True:
            for index in range(self._cursor, len(self.received)):
                arrival, message = self.received[index]
                if message["type"] == type and all(
                    message["data"].get(k) == v for k, v in data.items()
                ):
                    self._cursor = index + 1
                    return arrival, message
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._reader.done():
                raise AssertionError(f"no {type} {data} in {self.events}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def close(self) -> None:
        await self.connection.close()
        await self._reader


def phones_bob_answering(
    server: NuageServer, tmp_path: Path
) -> tuple[BaresipPhone, BaresipPhone, BaresipPhone]:
    """Alice, Bob and Carol; Bob's phone rings until answered."""
    (tmp_path / "auto").mkdir()
    alice, _, carol = three_phones(server, tmp_path / "auto")
    target = f"127.0.0.1:{server.config.server.sip_port}"
    return alice, _phone(tmp_path, target, "1002", BOB_TONE, answermode="manual"), carol


def base_url(server: NuageServer) -> str:
    return f"http://127.0.0.1:{server.config.server.http_port}"


async def token_of(client: httpx.AsyncClient, extension: str) -> str:
    response = await client.post(
        "/api/v1/auth/login",
        json={"email": EMAILS[extension], "password": PASSWORDS[extension]},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@asynccontextmanager
async def events_of(
    server: NuageServer, token: str, **params: object
) -> AsyncIterator[EventClient]:
    query = "&".join(f"{k}={v}" for k, v in {"token": token, **params}.items())
    url = f"ws://127.0.0.1:{server.config.server.http_port}/api/v1/events?{query}"
    async with connect(url) as connection:
        client = EventClient(connection)
        await client.wait_for("connected")
        try:
            yield client
        finally:
            await client.close()


async def test_presence_follows_a_call_within_200_ms(server: NuageServer, tmp_path: Path) -> None:
    """Camille watches: Lucas's line goes ringing, in call, available as Élodie's call to
    him rings, is answered and ends; each event within 200 ms of what the phones saw."""
    alice, bob, carol = phones_bob_answering(server, tmp_path)
    _, bob_id = ids(server, "1002")
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1003")
    async with events_of(server, token) as watcher, alice, bob, carol:
        for phone in (alice, bob, carol):
            await phone.wait_event("REGISTER_OK", timeout=10)
        await watcher.wait_for("presence.line", user_id=bob_id, line_state="available")
        await alice.dial(f"sip:1002@{DOMAIN}")
        await bob.wait_event("CALL_INCOMING", timeout=10)
        rang_at = time.monotonic()
        seen_at, _ = await watcher.wait_for("presence.line", user_id=bob_id, line_state="ringing")
        assert seen_at - rang_at < 0.2
        await bob.accept()
        await bob.wait_event("CALL_ESTABLISHED", timeout=10)
        answered_at = time.monotonic()
        seen_at, _ = await watcher.wait_for("presence.line", user_id=bob_id, line_state="in call")
        assert seen_at - answered_at < 0.2
        await alice.hangup()
        await bob.wait_event("CALL_CLOSED", timeout=10)
        closed_at = time.monotonic()
        seen_at, _ = await watcher.wait_for("presence.line", user_id=bob_id, line_state="available")
        assert seen_at - closed_at < 0.2
        # Camille is no party: she hears of the line states, not of the call itself.
        assert not [e for e in watcher.events if e["type"].startswith("call")]
        sequences = [
            e["sequence"] for e in watcher.events if "sequence" in e and e["type"] != "connected"
        ]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)


async def test_my_calls_call_log_status_and_favorites_arrive_live(
    server: NuageServer, tmp_path: Path
) -> None:
    alice, bob, carol = phones_bob_answering(server, tmp_path)
    _, bob_id = ids(server, "1002")
    _, carol_id = ids(server, "1003")
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        alice_token = await token_of(client, "1001")
        carol_token = await token_of(client, "1003")
        alice_auth = {"Authorization": f"Bearer {alice_token}"}
        async with (
            events_of(server, alice_token) as mine,
            events_of(server, carol_token) as colleague,
            alice,
            bob,
            carol,
        ):
            for phone in (alice, bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:1002@{DOMAIN}")
            _, ringing = await mine.wait_for("call.ringing")
            call = ringing["data"]
            assert (call["other"]["number"], call["state"], call["incoming"]) == (
                "1002",
                "ringing",
                False,
            )
            await bob.wait_event("CALL_INCOMING", timeout=10)
            await bob.accept()
            await mine.wait_for("call.answered", state="talking")
            hold = await client.post(f"/api/v1/me/calls/{call['id']}/hold", headers=alice_auth)
            assert hold.status_code == 204
            await mine.wait_for("call.held", state="on hold")
            resume = await client.post(f"/api/v1/me/calls/{call['id']}/resume", headers=alice_auth)
            assert resume.status_code == 204
            await mine.wait_for("call.resumed", state="talking")
            await alice.hangup()
            await mine.wait_for("call.ended", id=call["id"])
            _, logged = await mine.wait_for("call_log.created")
            assert logged["data"]["direction"] == "outgoing"
            assert logged["data"]["other"]["number"] == "1002"
            assert logged["data"]["answered_at"] is not None

            # Status: everyone in the company hears of it.
            changed = await client.put("/api/v1/me/status", headers=alice_auth, json={"key": "dnd"})
            assert changed.status_code == 200, changed.text
            _, status = await colleague.wait_for("presence.status")
            assert status["data"]["status"]["key"] == "dnd"

            # Favorites: only the user who starred hears of it.
            starred = await client.put(f"/api/v1/favorites/{carol_id}", headers=alice_auth)
            assert starred.status_code == 204
            await mine.wait_for("favorites.changed", user_id=carol_id, favorite=True)
            unstarred = await client.delete(f"/api/v1/favorites/{carol_id}", headers=alice_auth)
            assert unstarred.status_code == 204
            await mine.wait_for("favorites.changed", user_id=carol_id, favorite=False)

            # Nothing of Élodie's own calls and favorites reached Camille.
            private = ("call.", "call_log.", "favorites.")
            assert not [e for e in colleague.events if e["type"].startswith(private)]
            assert bob_id in {
                e["data"]["user_id"] for e in colleague.events if e["type"] == "presence.line"
            }


async def test_a_client_that_reconnects_gets_what_it_missed(
    server: NuageServer, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1001")
        auth = {"Authorization": f"Bearer {token}"}
        _, carol_id = ids(server, "1003")
        async with events_of(server, token) as first:
            hello = first.events[0]
            stream = hello["data"]["stream"]
            assert hello["data"]["resync"] is False
            await client.put(f"/api/v1/favorites/{carol_id}", headers=auth)
            _, starred = await first.wait_for("favorites.changed")
        last = starred["sequence"]
        # While disconnected:
        await client.delete(f"/api/v1/favorites/{carol_id}", headers=auth)
        await client.put("/api/v1/me/status", headers=auth, json={"key": "lunch"})
        async with events_of(server, token, stream=stream, since=last) as again:
            _, unstarred = await again.wait_for("favorites.changed", favorite=False)
            _, status = await again.wait_for("presence.status")
            assert status["data"]["status"]["key"] == "lunch"
            assert unstarred["sequence"] == last + 1
            assert again.events[0]["data"]["resync"] is False
        # From another numbering (a restarted server): the client must reload its state.
        async with events_of(server, token, stream="elsewhere", since=last) as other:
            assert other.events[0]["data"]["resync"] is True
            assert len(other.events) == 1
        # A sequence the server never gave.
        async with events_of(server, token, stream=stream, since=10_000) as ahead:
            assert ahead.events[0]["data"]["resync"] is True


async def test_the_stream_needs_a_valid_token(server: NuageServer) -> None:
    url = f"ws://127.0.0.1:{server.config.server.http_port}/api/v1/events"
    for query in ("", "?token=nope.nope"):
        async with connect(url + query) as connection:
            message = json.loads(await connection.recv())
            assert message["type"] == "error"
            assert message["data"]["error"]["code"] == "invalid_token"
            with pytest.raises(ConnectionClosed) as closed:
                await connection.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1001")
        async with connect(f"{url}?token={token}&since=abc") as connection:
            message = json.loads(await connection.recv())
            assert message["data"]["error"]["field"] == "since"
        # Logging out ends the stream.
        async with events_of(server, token) as stream:
            logout = await client.post(
                "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
            )
            assert logout.status_code == 204
            # A renewal with the revoked token is refused at once.
            renewal = {"type": "authenticate", "token": token}
            await stream.connection.send(json.dumps(renewal))
            await asyncio.wait_for(stream.connection.wait_closed(), 5)
            assert stream.connection.close_code == 4401


async def test_a_stream_ends_once_its_session_is_logged_out(
    server: NuageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "TOKEN_CHECK_PERIOD", 0.2)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1001")
        async with events_of(server, token) as stream:
            logout = await client.post(
                "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
            )
            assert logout.status_code == 204
            await asyncio.wait_for(stream.connection.wait_closed(), 5)
            assert stream.connection.close_code == 4401


async def test_a_blind_transfer_and_a_conference_show_in_each_partys_events(
    server: NuageServer, tmp_path: Path
) -> None:
    """Élodie calls Lucas and transfers him to Camille: Élodie's call ends, Lucas's goes
    on with Camille, Camille's rings and is answered. Then Camille, holding Lucas, calls
    Élodie and merges both calls: each party's call becomes a conference."""
    alice, bob, carol = three_phones(server, tmp_path)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        tokens = {ext: await token_of(client, ext) for ext in ("1001", "1002", "1003")}
        auth = {ext: {"Authorization": f"Bearer {token}"} for ext, token in tokens.items()}
        async with (
            events_of(server, tokens["1001"]) as alice_events,
            events_of(server, tokens["1002"]) as bob_events,
            events_of(server, tokens["1003"]) as carol_events,
            alice,
            bob,
            carol,
        ):
            for phone in (alice, bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:1002@{DOMAIN}")
            _, answered = await alice_events.wait_for("call.answered")
            call_id = answered["data"]["id"]
            await bob_events.wait_for("call.answered", id=call_id)
            moved = await client.post(
                f"/api/v1/me/calls/{call_id}/transfer",
                headers=auth["1001"],
                json={"target": "1003"},
            )
            assert moved.status_code == 204, moved.text
            await alice_events.wait_for("call.ended", id=call_id)
            _, transferred = await bob_events.wait_for("call.transferred", id=call_id)
            assert transferred["data"]["other"]["number"] == "1003"
            # Camille's phone rang for it (Lucas calling), then she answered.
            _, ringing = await carol_events.wait_for("call.ringing", id=call_id)
            assert ringing["data"]["other"]["number"] == "1002" and ringing["data"]["incoming"]
            _, carols = await carol_events.wait_for("call.answered", id=call_id)
            assert carols["data"]["other"]["number"] == "1002"

            # Camille holds Lucas and calls Élodie, then merges the two calls.
            held = await client.post(f"/api/v1/me/calls/{call_id}/hold", headers=auth["1003"])
            assert held.status_code == 204
            await bob_events.wait_for("call.held", id=call_id, state="held")
            await carol.dial(f"sip:1001@{DOMAIN}")
            _, second = await carol_events.wait_for("call.answered", state="talking")
            merged = await client.post(
                f"/api/v1/me/calls/{second['data']['id']}/conference",
                headers=auth["1003"],
                json={"other_call_id": call_id},
            )
            assert merged.status_code == 204, merged.text
            _, conference = await carol_events.wait_for("call.conference", state="conference")
            others = {p["number"] for p in conference["data"]["participants"]}
            assert others == {"1001", "1002"}
            _, bobs = await bob_events.wait_for("call.conference")
            assert {p["number"] for p in bobs["data"]["participants"]} == {"1001", "1003"}
            await alice.hangup()
            _, smaller = await carol_events.wait_for("call.conference")
            assert {p["number"] for p in smaller["data"]["participants"]} == {"1002"}
