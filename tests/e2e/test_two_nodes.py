"""Two server processes sharing PostgreSQL and Redis: each one's events reach the other's
event streams, numbered alike, and a client can reconnect to either."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
from websockets.asyncio.client import connect

from api.test_events import EMAILS, PASSWORDS, EventClient
from e2e.server import NuageProcess, acme_plan, e2e_database, make_nuage
from e2e.test_transfer import ALICE_TONE, _phone
from events.test_bus import REDIS_URL

POSTGRESQL = os.environ.get(
    "NUAGE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[NuageProcess, NuageProcess]]:
    prefix = f"test-nodes-{uuid.uuid4().hex}:"
    async with e2e_database(POSTGRESQL) as database_url:
        first = make_nuage(tmp_path / "a", database_url=database_url, redis=(REDIS_URL, prefix))
        second = make_nuage(tmp_path / "b", database_url=database_url, redis=(REDIS_URL, prefix))
        try:
            await first.provision(acme_plan(5999))
            # One at a time: the first start migrates the database.
            await first.start()
            await second.start()
            yield first, second
        finally:
            await second.stop()
            await first.stop()
            client = redis.from_url(REDIS_URL)
            keys = [key async for key in client.scan_iter(f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def _token(node: NuageProcess, extension: str) -> str:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}") as client:
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": EMAILS[extension], "password": PASSWORDS[extension]},
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def _stream(node: NuageProcess, token: str, query: str = "") -> EventClient:
    url = f"ws://127.0.0.1:{node.http_port}/api/v1/events?token={token}{query}"
    client = EventClient(await connect(url))
    await client.wait_for("connected")
    return client


async def test_each_node_delivers_the_others_events(
    nodes: tuple[NuageProcess, NuageProcess], tmp_path: Path
) -> None:
    first, second = nodes
    alice_token = await _token(first, "1001")
    carol_token = await _token(second, "1003")
    carol_on_second = await _stream(second, carol_token)
    carol_on_first = await _stream(first, carol_token)
    alice_on_second = await _stream(second, alice_token)
    try:
        # A status set through the first node, watched on both.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.http_port}") as api:
            auth = {"Authorization": f"Bearer {alice_token}"}
            changed = await api.put("/api/v1/me/status", headers=auth, json={"key": "dnd"})
            assert changed.status_code == 200, changed.text
            _, on_second = await carol_on_second.wait_for("presence.status")
            _, on_first = await carol_on_first.wait_for("presence.status")
            assert on_second == on_first and on_second["data"]["status"]["key"] == "dnd"
            # Élodie's own event, from the first node, on her stream at the second.
            carol = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {carol_token}"})
            carol_id = carol.json()["id"]
            starred = await api.put(f"/api/v1/favorites/{carol_id}", headers=auth)
            assert starred.status_code == 204
            await alice_on_second.wait_for("favorites.changed", favorite=True)

        # A phone registering with the second node: its line state on the first.
        target = f"127.0.0.1:{second.sip_port}"
        async with _phone(tmp_path, target, "1001", ALICE_TONE) as alice:
            await alice.wait_event("REGISTER_OK", timeout=10)
            await carol_on_first.wait_for("presence.line", line_state="available")
        await carol_on_first.wait_for("presence.line", line_state="offline", within=10)

        # Reconnecting to the other node replays from the shared history.
        stream = carol_on_second.events[0]["data"]["stream"]
        assert carol_on_first.events[0]["data"]["stream"] == stream
        since = on_first["sequence"]
        again = await _stream(first, carol_token, f"&stream={stream}&since={since}")
        try:
            assert again.events[0]["data"]["resync"] is False
            await again.wait_for("presence.line", line_state="available")
        finally:
            await again.close()
    finally:
        for client in (carol_on_second, carol_on_first, alice_on_second):
            await client.close()
