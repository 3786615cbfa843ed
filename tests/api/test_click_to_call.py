"""Click-to-call (POST /api/v1/me/calls): the server rings the user's phone, then calls
the target from it; real baresip phones, audio checked both ways. The call is the user's
under one id from the POST on: listed and published while their phone rings, and
cancellable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.test_events import EventClient, base_url, events_of, phones_bob_answering, token_of
from e2e.server import USERS, acme_plan
from e2e.test_browser_transfers import hung_up as browser_hung_up
from e2e.test_browser_transfers import take
from e2e.test_call_control import ids, in_process_server, server, three_phones
from e2e.test_sip_websocket import browser
from e2e.test_transfer import ALICE_TONE, BOB_TONE, TONES, _phone
from nuage.media.prompts import RINGBACK_FREQUENCY
from nuage.server import NuageServer
from peers import audio
from peers.baresip import BaresipPhone
from peers.hearing import phone_hears, tone
from peers.webrtc import loopback_only

__all__ = ["server"]

# What GET /me/calls and the events show of a click-to-call to 1002 while the user's
# phones ring: the target as dialled, nobody routed to yet.
RINGING_MY_PHONES = {
    "direction": "internal",
    "incoming": False,
    "other": {"number": "1002", "name": ""},
    "state": "ringing",
    "answered_at": None,
    "recording": False,
    "recording_since": None,
    "quality": None,
    "participants": [],
}


def ringing_phones(server: NuageServer, tmp_path: Path) -> tuple[BaresipPhone, BaresipPhone]:
    """Élodie's and Lucas's phones, both ringing until answered."""
    target = f"127.0.0.1:{server.config.server.sip_port}"
    return (
        _phone(tmp_path, target, "1001", ALICE_TONE, answermode="manual"),
        _phone(tmp_path, target, "1002", BOB_TONE, answermode="manual"),
    )


def call_events(client: EventClient, call_id: str) -> list[str]:
    """The types of the call.* events received of ``call_id``, in order."""
    return [
        event["type"]
        for event in client.events
        if event["type"].startswith("call.") and event["data"].get("id") == call_id
    ]


async def my_calls(client: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/me/calls", headers=auth)
    assert response.status_code == 200, response.text
    calls: list[dict[str, Any]] = response.json()
    return calls


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
            # One call from the POST on: no end between her phone's ringing and Lucas's.
            kinds = call_events(mine, call_id)
            assert kinds[0] == "call.ringing" and kinds.count("call.ended") == 1, kinds
            assert kinds[-1] == "call.ended" and "call.answered" in kinds, kinds
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
            # No call took over from her phone's ringing: that call is over.
            await mine.wait_for("call.ended", id=placed.json()["id"])
            _, logged = await mine.wait_for("call_log.created")
            assert logged["data"]["outcome"] == "failed"
            assert logged["data"]["other"]["number"] == "+3290123456"
    assert server.service is not None and server.service.calls.active_calls == 0


async def test_my_ringing_phones_are_my_call_until_i_cancel_or_none_answers(
    tmp_path: Path,
) -> None:
    """Élodie's phone rings and she does not answer it: the call is hers to see, and
    to cancel; left alone, it ends at the ring timeout. Lucas's phone never rings."""
    async with in_process_server(tmp_path, acme_plan(5999), ring_timeout=2.0) as server:
        alice, bob = ringing_phones(server, tmp_path)
        async with httpx.AsyncClient(base_url=base_url(server)) as client:
            token = await token_of(client, "1001")
            auth = {"Authorization": f"Bearer {token}"}
            async with events_of(server, token) as mine, alice, bob:
                for phone in (alice, bob):
                    await phone.wait_event("REGISTER_OK", timeout=10)
                placed = await client.post(
                    "/api/v1/me/calls", headers=auth, json={"target": "1002"}
                )
                assert placed.status_code == 202, placed.text
                call_id = placed.json()["id"]
                # Hers as soon as the POST answers, before her phone even rings.
                assert await my_calls(client, auth) == [{"id": call_id, **RINGING_MY_PHONES}]
                _, ringing = await mine.wait_for("call.ringing", id=call_id)
                assert ringing["data"] == {"id": call_id, **RINGING_MY_PHONES}
                await alice.wait_event("CALL_INCOMING", timeout=10)
                hold = await client.post(f"/api/v1/me/calls/{call_id}/hold", headers=auth)
                assert hold.status_code == 409
                hung_up = await client.post(f"/api/v1/me/calls/{call_id}/hangup", headers=auth)
                assert hung_up.status_code == 204
                await alice.wait_event("CALL_CLOSED", timeout=5)
                await mine.wait_for("call.ended", id=call_id)
                assert await my_calls(client, auth) == []
                _, logged = await mine.wait_for("call_log.created")
                entry = logged["data"]
                assert (entry["direction"], entry["other"]["number"]) == ("outgoing", "1002")
                assert (entry["outcome"], entry["reason"]) == ("cancelled", "caller hung up")
                gone = await client.post(f"/api/v1/me/calls/{call_id}/hangup", headers=auth)
                assert gone.status_code == 404

                placed = await client.post(
                    "/api/v1/me/calls", headers=auth, json={"target": "1002"}
                )
                unanswered = placed.json()["id"]
                assert unanswered != call_id
                await alice.wait_event("CALL_INCOMING", timeout=10)
                await mine.wait_for("call.ringing", id=unanswered)
                # The ring timeout (2 s) stops her phone: the call ends.
                await mine.wait_for("call.ended", within=6, id=unanswered)
                await alice.wait_event("CALL_CLOSED", timeout=5)
                assert await my_calls(client, auth) == []
                _, logged = await mine.wait_for("call_log.created")
                entry = logged["data"]
                assert (entry["outcome"], entry["reason"], entry["answered_at"]) == (
                    "cancelled",
                    "not answered on the caller's phones",
                    None,
                )
                assert call_events(mine, call_id) == ["call.ringing", "call.ended"]
                assert call_events(mine, unanswered) == ["call.ringing", "call.ended"]
        assert not [e for e in bob.events if e.type == "CALL_INCOMING"]
        assert server.service is not None and server.service.calls.diallings() == []


async def test_the_call_keeps_its_id_once_my_phone_answers(
    server: NuageServer, tmp_path: Path
) -> None:
    """Élodie answers her phone: Lucas's rings, and the call is still the one the POST
    named; she cancels it from the app before Lucas answers."""
    alice, bob = ringing_phones(server, tmp_path)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1001")
        auth = {"Authorization": f"Bearer {token}"}
        async with events_of(server, token) as mine, alice, bob:
            for phone in (alice, bob):
                await phone.wait_event("REGISTER_OK", timeout=10)
            placed = await client.post("/api/v1/me/calls", headers=auth, json={"target": "1002"})
            call_id = placed.json()["id"]
            await alice.wait_event("CALL_INCOMING", timeout=10)
            assert await my_calls(client, auth) == [{"id": call_id, **RINGING_MY_PHONES}]
            await alice.accept()
            await bob.wait_event("CALL_INCOMING", timeout=10)
            # Now routed: Lucas, by name, rings.
            lucas = {"number": "1002", "name": USERS["1002"][0]}
            await mine.wait_for("call.ringing", id=call_id, other=lucas)
            [call] = await my_calls(client, auth)
            assert (call["id"], call["state"], call["incoming"], call["other"]) == (
                call_id,
                "ringing",
                False,
                lucas,
            )
            hung_up = await client.post(f"/api/v1/me/calls/{call_id}/hangup", headers=auth)
            assert hung_up.status_code == 204
            await bob.wait_event("CALL_CLOSED", timeout=5)
            await alice.wait_event("CALL_CLOSED", timeout=5)
            await mine.wait_for("call.ended", id=call_id)
            _, logged = await mine.wait_for("call_log.created")
            entry = logged["data"]
            assert (entry["outcome"], entry["reason"], entry["other"]) == (
                "cancelled",
                "caller hung up",
                lucas,
            )
            assert call_events(mine, call_id) == ["call.ringing", "call.ringing", "call.ended"]
    assert server.control is not None and server.control.calls(*ids(server, "1001")) == []


async def test_my_web_app_answers_and_talks(
    server: NuageServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Élodie's only device is the web app: it is offered WebRTC (ICE-lite, DTLS-SRTP)
    naming the call, answers, and she and Lucas's phone hear each other."""
    loopback_only(monkeypatch)
    target = f"127.0.0.1:{server.config.server.sip_port}"
    lucas = _phone(tmp_path, target, "1002", BOB_TONE)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        auth = {"Authorization": f"Bearer {await token_of(client, '1001')}"}
        async with browser(server, "1001") as ws, lucas:
            assert (await ws.register()).status == 200
            await lucas.wait_event("REGISTER_OK", timeout=10)
            placed = await client.post("/api/v1/me/calls", headers=auth, json={"target": "1002"})
            assert placed.status_code == 202, placed.text
            call_id = placed.json()["id"]
            mine = await take(ws, ALICE_TONE)
            try:
                assert mine.call_id == call_id
                await lucas.wait_event("CALL_ESTABLISHED", timeout=10)
                await mine.hears(BOB_TONE)
                await phone_hears(lucas, tone(ALICE_TONE), "Élodie's web app")
                # The app's dialog ends too (the action returns once it acknowledged).
                hung_up, _ = await asyncio.gather(
                    client.post(f"/api/v1/me/calls/{call_id}/hangup", headers=auth),
                    browser_hung_up(ws),
                )
                assert hung_up.status_code == 204
                await lucas.wait_event("CALL_CLOSED", timeout=10)
            finally:
                await mine.media.close()
