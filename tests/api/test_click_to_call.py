"""Click-to-call (POST /api/v1/me/calls): the server rings the user's phone, then calls
the target from it; real baresip phones, audio checked both ways."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from api.test_events import base_url, events_of, phones_bob_answering, token_of
from e2e.test_call_control import ids, server, three_phones
from e2e.test_transfer import ALICE_TONE, BOB_TONE, TONES
from nuage.media.prompts import RINGBACK_FREQUENCY
from nuage.server import NuageServer
from peers import audio

__all__ = ["server"]


async def test_my_phone_rings_then_calls_the_number(server: NuageServer, tmp_path: Path) -> None:
    """Élodie's phone rings and answers by itself; she hears the ringing tone while
    Lucas's phone rings, then Lucas."""
    alice, bob, carol = phones_bob_answering(server, tmp_path)
    company, alice_id = ids(server, "1001")
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1001")
        auth = {"Authorization": f"Bearer {token}"}
        async with events_of(server, token) as mine, alice, bob, carol:
            for phone in (alice, bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            placed = await client.post("/api/v1/me/calls", headers=auth, json={"target": "10 02"})
            assert placed.status_code == 202, placed.text
            call_id = placed.json()["id"]
            # Élodie's phone rings first (it shows whom it will call), then Lucas's.
            answered = await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            assert "1002" in answered.param
            await bob.wait_event("CALL_INCOMING", timeout=10)
            await mine.wait_for("call.ringing", id=call_id)
            await asyncio.sleep(1.5)
            await bob.accept()
            await bob.wait_event("CALL_ESTABLISHED", timeout=10)
            await mine.wait_for("call.answered", id=call_id, state="talking")
            [call] = (await client.get("/api/v1/me/calls", headers=auth)).json()
            assert (call["id"], call["other"]["number"], call["state"]) == (
                call_id,
                "1002",
                "talking",
            )
            await asyncio.sleep(2.5)
            hung_up = await client.post(f"/api/v1/me/calls/{call_id}/hangup", headers=auth)
            assert hung_up.status_code == 204
            await bob.wait_event("CALL_CLOSED", timeout=10)
            await alice.wait_event("CALL_CLOSED", timeout=10)
            _, logged = await mine.wait_for("call_log.created")
            heard_by_bob = bob.received_audio(TONES)
            heard_by_alice = alice.received_audio([*TONES, RINGBACK_FREQUENCY])
    assert audio.share(heard_by_bob, ALICE_TONE) > 0.7, audio.describe(heard_by_bob)
    heard = [s for s in audio.segments(heard_by_alice) if s.tone and s.seconds() > 0.2]
    assert [s.tone for s in heard] == [RINGBACK_FREQUENCY, BOB_TONE], audio.describe(heard_by_alice)
    assert heard[0].seconds() > 0.8 and heard[1].seconds() > 2.0
    assert (logged["data"]["direction"], logged["data"]["other"]["number"]) == (
        "outgoing",
        "1002",
    )
    assert server.control is not None and server.control.calls(company, alice_id) == []


async def test_a_refused_target_hangs_my_phone_up(server: NuageServer, tmp_path: Path) -> None:
    alice, bob, carol = three_phones(server, tmp_path)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1001")
        auth = {"Authorization": f"Bearer {token}"}
        # Nothing registered yet: nothing to ring.
        refused = await client.post("/api/v1/me/calls", headers=auth, json={"target": "1002"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "no_device"
        bad = await client.post("/api/v1/me/calls", headers=auth, json={"target": "call me"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "target"
        async with events_of(server, token) as mine, alice, bob, carol:
            await alice.wait_event("REGISTER_OK", timeout=10)
            # A blocked prefix of the plan's policy: refused once the phone answers.
            placed = await client.post(
                "/api/v1/me/calls", headers=auth, json={"target": "+32 90 123456"}
            )
            assert placed.status_code == 202
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await alice.wait_event("CALL_CLOSED", timeout=10)
            _, logged = await mine.wait_for("call_log.created")
            assert logged["data"]["outcome"] == "failed"
            assert logged["data"]["other"]["number"] == "+3290123456"
    assert server.service is not None and server.service.calls.active_calls == 0
