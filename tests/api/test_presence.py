"""Line states in the directory follow real phones: registered, ringing, in a call, on
hold (the server in this process, baresip phones, the API over its HTTP port)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from e2e.server import DOMAIN
from e2e.test_call_control import ids, server, three_phones
from nuage.server import NuageServer

__all__ = ["server"]


async def line_states(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, str]:
    response = await client.get("/api/v1/directory", headers=headers)
    assert response.status_code == 200
    return {person["extension"]: person["line_state"] for person in response.json()}


async def test_line_states_follow_the_phones(server: NuageServer, tmp_path: Path) -> None:
    control = server.control
    assert control is not None
    base_url = f"http://127.0.0.1:{server.config.server.http_port}"
    alice, bob, carol = three_phones(server, tmp_path)
    company, alice_id = ids(server, "1001")
    async with httpx.AsyncClient(base_url=base_url) as client:
        login = await client.post(
            "/api/v1/auth/login", json={"email": "lucas@acme.example", "password": "app-1002"}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        assert set((await line_states(client, headers)).values()) == {"offline"}
        async with alice, bob, carol:
            for phone in (alice, bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            assert await line_states(client, headers) == {
                "1001": "available",
                "1002": "available",
                "1003": "available",
            }
            await alice.dial(f"sip:1002@{DOMAIN}")
            await bob.wait_event("CALL_ESTABLISHED", timeout=10)
            states = await line_states(client, headers)
            assert (states["1001"], states["1002"], states["1003"]) == (
                "in call",
                "in call",
                "available",
            )
            [call] = control.calls(company, alice_id)
            await control.hold(company, alice_id, call.id)
            states = await line_states(client, headers)
            assert (states["1001"], states["1002"]) == ("on hold", "in call")
            await alice.hangup()
            await bob.wait_event("CALL_CLOSED", timeout=10)
            await asyncio.sleep(0.2)
            assert (await line_states(client, headers))["1002"] == "available"
