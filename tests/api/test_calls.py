"""The caller's calls through the API: live calls and their actions, the call log,
recordings (their owner only) and devices; real phones, the server in this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from e2e.server import DOMAIN, USERS
from e2e.test_call_control import server, three_phones
from nuage.server import NuageServer

__all__ = ["server"]

# The call log's queries are the API's most database-specific: PostgreSQL too.
pytestmark = pytest.mark.db


@pytest.fixture
async def http(server: NuageServer) -> AsyncIterator[httpx.AsyncClient]:
    base_url = f"http://127.0.0.1:{server.config.server.http_port}"
    async with httpx.AsyncClient(base_url=base_url) as client:
        yield client


async def logged_in(http: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await http.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_a_call_driven_and_logged_through_the_api(
    server: NuageServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice_api = await logged_in(http, "elodie@acme.example", "app-1001")
    bob_api = await logged_in(http, "lucas@acme.example", "app-1002")
    alice, bob, _ = three_phones(server, tmp_path)  # Carol's phone stays off
    async with alice, bob:
        for phone in (alice, bob):
            await phone.wait_event("REGISTER_OK", timeout=10)
        await alice.dial(f"sip:1002@{DOMAIN}")
        await bob.wait_event("CALL_ESTABLISHED", timeout=10)
        [device] = (await http.get("/api/v1/me/devices", headers=alice_api)).json()
        assert device["transport"] == "udp" and "baresip" in (device["user_agent"] or "")

        [call] = (await http.get("/api/v1/me/calls", headers=alice_api)).json()
        assert (call["other"]["number"], call["state"]) == ("1002", "talking")
        base = f"/api/v1/me/calls/{call['id']}"
        # Bob may not act on Alice's behalf, nor anybody on a call that is not theirs.
        assert (await http.post(f"{base}/hold", headers=bob_api)).status_code == 204
        assert (await http.post(f"{base}/resume", headers=bob_api)).status_code == 204
        missing = await http.post("/api/v1/me/calls/nope/hold", headers=alice_api)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

        assert (await http.post(f"{base}/hold", headers=alice_api)).status_code == 204
        [held] = (await http.get("/api/v1/me/calls", headers=alice_api)).json()
        assert held["state"] == "on hold"
        assert (await http.post(f"{base}/resume", headers=alice_api)).status_code == 204
        recording = await http.post(f"{base}/recording", headers=alice_api)
        assert recording.status_code == 204
        again = await http.post(f"{base}/recording", headers=bob_api)
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        await asyncio.sleep(2)
        assert (await http.delete(f"{base}/recording", headers=alice_api)).status_code == 204
        bad_digits = await http.post(f"{base}/dtmf", headers=alice_api, json={"digits": "x"})
        assert bad_digits.status_code == 422 and bad_digits.json()["error"]["field"] == "digits"
        assert (
            await http.post(f"{base}/dtmf", headers=alice_api, json={"digits": "5"})
        ).status_code == 204
        await bob.wait_event("CALL_DTMF_START", timeout=5)
        assert (await http.post(f"{base}/hangup", headers=alice_api)).status_code == 204
        await bob.wait_event("CALL_CLOSED", timeout=10)
        await alice.wait_event("CALL_CLOSED", timeout=10)
        # A call to Carol, whose phone is off: her voicemail answers; missed, for her.
        await alice.dial(f"sip:1003@{DOMAIN}")
        await alice.wait_event("CALL_ESTABLISHED", timeout=10)
        await alice.hangup()
        await alice.wait_event("CALL_CLOSED", timeout=10)

    await asyncio.sleep(0.5)  # the records are written by the batch writer
    log = (await http.get("/api/v1/me/calllog", headers=alice_api)).json()
    assert [entry["other"]["number"] for entry in log] == ["1003", "1002"]
    assert [entry["direction"] for entry in log] == ["outgoing", "outgoing"]
    # Whom she called, by name; why the call to Carol ended as it did.
    assert [entry["other"]["name"] for entry in log] == [USERS["1003"][0], USERS["1002"][0]]
    assert log[0]["reason"] == "offline" and log[0]["outcome"] == "voicemail"
    [recorded] = log[1]["recordings"]
    assert 1500 <= recorded["duration_ms"] <= 3500
    only = (await http.get("/api/v1/me/calllog?filter=recordings", headers=alice_api)).json()
    assert [entry["id"] for entry in only] == [log[1]["id"]]
    page = (await http.get(f"/api/v1/me/calllog?before={log[0]['id']}", headers=alice_api)).json()
    assert [entry["id"] for entry in page] == [log[1]["id"]]
    # Bob's log has the call as incoming, without Alice's recording; Carol's, a missed one.
    [bobs] = (await http.get("/api/v1/me/calllog", headers=bob_api)).json()
    assert (bobs["direction"], bobs["recordings"], bobs["missed"]) == ("incoming", [], False)
    carol_api = await logged_in(http, "camille@acme.example", "app-1003")
    [missed] = (await http.get("/api/v1/me/calllog?filter=missed", headers=carol_api)).json()
    assert (missed["other"]["number"], missed["missed"]) == ("1001", True)

    audio = await http.get(f"/api/v1/recordings/{recorded['id']}", headers=alice_api)
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF"
    refused = await http.get(f"/api/v1/recordings/{recorded['id']}", headers=bob_api)
    assert refused.status_code == 404
