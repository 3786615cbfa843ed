"""Voicemail deposits with real phones (F17): a caller whom nobody answers, or who
calls a user whose status sends calls to voicemail, hears the greeting and the beep and
leaves a message; the file holds the caller's tone; the owner lists and fetches it
through the API and hears of it on the event stream."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from api.test_events import base_url, events_of, phones_bob_answering, token_of
from e2e.server import DOMAIN, USERS, acme_plan
from e2e.test_call_control import in_process_server
from e2e.test_transfer import ALICE_TONE, TONES
from nuage.pbx.voicemail import deposit
from nuage.server import NuageServer
from nuage.store.models import CallRecord, VoicemailMessage
from peers import audio
from peers.baresip import BaresipPhone


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NuageServer]:
    async with in_process_server(tmp_path, acme_plan(5999), ring_timeout=2.0) as nuage:
        yield nuage


async def speak_after_the_beep(caller: BaresipPhone, seconds: float) -> None:
    """Once a box answered ``caller``: a key skips the greeting (its own tests hear it
    whole), then the caller's tone is recorded for about ``seconds``."""
    await asyncio.sleep(0.5)
    await caller.command("sndcode", "1")
    await asyncio.sleep(seconds)


def tone_seconds(wav: bytes, frequency: float) -> float:
    """How long ``frequency`` dominates a mono 8 kHz WAV."""
    with wave.open(io.BytesIO(wav), "rb") as reader:
        assert (reader.getnchannels(), reader.getframerate()) == (1, 8000)
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    frames = audio.timeline(samples.astype(np.float64) / 32768, 8000, TONES)
    return sum(1 for tone in frames if tone == frequency) * audio.FRAME_MS / 1000


async def test_an_unanswered_call_leaves_a_message(server: NuageServer, tmp_path: Path) -> None:
    alice, bob, carol = phones_bob_answering(server, tmp_path)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1002")
        auth = {"Authorization": f"Bearer {token}"}
        async with events_of(server, token) as bobs, alice, bob, carol:
            for phone in (alice, bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:1002@{DOMAIN}")
            await bob.wait_event("CALL_INCOMING", timeout=10)
            # Nobody answers within the ring time (2 s): voicemail does.
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await bob.wait_event("CALL_CLOSED", timeout=10)
            await speak_after_the_beep(alice, 3.5)
            await alice.hangup()
            await alice.wait_event("CALL_CLOSED", timeout=10)
            _, created = await bobs.wait_for("voicemail.created", within=10)
            message = created["data"]
            listed = (await client.get("/api/v1/me/voicemail", headers=auth)).json()
            assert [m["id"] for m in listed] == [message["id"]] and listed[0]["new"] is True
            assert message["caller"]["number"] == "1001"
            fetched = await client.get(f"/api/v1/me/voicemail/{message['id']}/audio", headers=auth)
            assert fetched.status_code == 200
            assert fetched.headers["content-type"] == "audio/wav"
            heard = await client.post(f"/api/v1/me/voicemail/{message['id']}/heard", headers=auth)
            assert heard.status_code == 204
            await bobs.wait_for("voicemail.heard", id=message["id"])
            assert (await client.get("/api/v1/me/voicemail", headers=auth)).json()[0][
                "new"
            ] is False
            # Nobody else may fetch it.
            alices = {"Authorization": f"Bearer {await token_of(client, '1001')}"}
            other = await client.get(f"/api/v1/me/voicemail/{message['id']}/audio", headers=alices)
            assert other.status_code == 404
            deleted = await client.delete(f"/api/v1/me/voicemail/{message['id']}", headers=auth)
            assert deleted.status_code == 204
            assert (await client.get("/api/v1/me/voicemail", headers=auth)).json() == []
    # What was recorded is Élodie's tone, for most of the message.
    seconds = tone_seconds(fetched.content, ALICE_TONE)
    assert 2.0 < seconds <= message["duration_ms"] / 1000 + 0.1, seconds
    assert server.db is not None
    async with server.db.session() as session:
        [record] = await session.scalars(select(CallRecord))
        assert (record.outcome, record.answered_at, record.reason) == (
            "voicemail",
            None,
            "no answer",
        )
        assert list(await session.scalars(select(VoicemailMessage))) == []
    assert not list((tmp_path / "data" / "voicemail").rglob("*.wav"))


async def test_a_status_sends_calls_to_voicemail_and_hash_ends_the_message(
    server: NuageServer, tmp_path: Path
) -> None:
    """Lucas is in a meeting: Élodie's call goes straight to his voicemail, his phone
    never rings. She keys # after her message: she hears goodbye and is hung up on.
    Then she calls again and hangs up at the beep: nothing is kept."""
    alice, bob, carol = phones_bob_answering(server, tmp_path)
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1002")
        auth = {"Authorization": f"Bearer {token}"}
        meeting = await client.put("/api/v1/me/status", headers=auth, json={"key": "meeting"})
        assert meeting.status_code == 200
        async with events_of(server, token) as bobs, alice, bob, carol:
            for phone in (alice, bob, carol):
                await phone.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:1002@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await speak_after_the_beep(alice, 3.0)
            await alice.command("sndcode", "#")
            await alice.wait_event("CALL_CLOSED", timeout=10)
            _, created = await bobs.wait_for("voicemail.created", within=10)
            assert 2000 < created["data"]["duration_ms"] < 4000, created
            # Hung up during the greeting: no message.
            await alice.dial(f"sip:1002@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await asyncio.sleep(2.0)
            await alice.hangup()
            await alice.wait_event("CALL_CLOSED", timeout=10)
            await asyncio.sleep(0.5)
            listed = (await client.get("/api/v1/me/voicemail", headers=auth)).json()
            assert [m["id"] for m in listed] == [created["data"]["id"]]
        assert not [e for e in bob.events if e.type == "CALL_INCOMING"]


async def test_a_silent_caller_ends_the_message(
    server: NuageServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Élodie speaks (her tone, 4 s), then says nothing: after the silence timeout (2 s
    here) the message ends, she hears goodbye and is hung up on; the message is kept."""
    monkeypatch.setattr(deposit, "SILENCE_SECONDS", 2.0)
    spoken = np.concatenate([audio.tone(ALICE_TONE, 4.0), np.zeros(8000 * 60)])
    wav = audio.write_wav(tmp_path / "speaks-then-silent.wav", spoken)
    target = f"127.0.0.1:{server.config.server.sip_port}"
    alice = BaresipPhone(
        tmp_path,
        "1001",
        tone_wav=wav,
        domain=DOMAIN,
        password=USERS["1001"][2],
        proxy=f"sip:{target}",
    )
    async with httpx.AsyncClient(base_url=base_url(server)) as client:
        token = await token_of(client, "1002")
        async with events_of(server, token) as bobs, alice:
            await alice.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:*971002@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=5)
            await asyncio.sleep(0.5)
            await alice.command("sndcode", "1")  # no greeting: straight to the beep
            await alice.wait_event("CALL_CLOSED", timeout=15)
            _, created = await bobs.wait_for("voicemail.created", within=5)
    # About 3 s of her tone, then 2 s of silence, then it ended.
    assert 3500 < created["data"]["duration_ms"] < 6500, created
