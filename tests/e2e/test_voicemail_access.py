"""Listening to voicemail from a phone (issue 5) with real phones: Lucas dials *98 from
his baresip, hears how many new messages he has, then Élodie's message (her tone), and
deletes it by key; with a PIN on his box he keys it (after a wrong one) and records his
greeting, which Élodie then hears when she calls him."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import select

from api.test_events import base_url, events_of, phones_bob_answering, token_of
from e2e.server import DOMAIN, acme_plan
from e2e.test_call_control import in_process_server
from e2e.test_transfer import ALICE_TONE, BOB_TONE, TONES
from e2e.test_voicemail import speak_after_the_beep, tone_seconds
from nuage.store.models import User, VoicemailBox
from peers import audio
from peers.baresip import BaresipPhone

ACCESS = f"sip:*98@{DOMAIN}"
# baresip merges keys sent closer together than about a second: space them out.
KEY_GAP = 1.2

PIN_PLAN = """
[[voicemail]]
extension = "1002"
pin = "4321"
"""


async def keys(phone: BaresipPhone, sequence: str) -> None:
    for key in sequence:
        await phone.command("sndcode", key)
        await asyncio.sleep(KEY_GAP)


async def test_lucas_hears_a_new_message_then_deletes_it(tmp_path: Path) -> None:
    async with in_process_server(tmp_path, acme_plan(5999), ring_timeout=2.0) as server:
        alice, bob, carol = phones_bob_answering(server, tmp_path)
        async with httpx.AsyncClient(base_url=base_url(server)) as client:
            token = await token_of(client, "1002")
            auth = {"Authorization": f"Bearer {token}"}
            meeting = await client.put("/api/v1/me/status", headers=auth, json={"key": "meeting"})
            assert meeting.status_code == 200
            async with events_of(server, token) as bobs, alice, bob, carol:
                for phone in (alice, bob):
                    await phone.wait_event("REGISTER_OK", timeout=10)
                # Élodie leaves a message of about 3 s: her tone, then '#'.
                await alice.dial(f"sip:1002@{DOMAIN}")
                await alice.wait_event("CALL_ESTABLISHED", timeout=10)
                await speak_after_the_beep(alice, 3.0)
                await alice.command("sndcode", "#")
                await alice.wait_event("CALL_CLOSED", timeout=10)
                _, created = await bobs.wait_for("voicemail.created", within=10)
                message_id = created["data"]["id"]
                # Lucas listens: "one new message", the message (then heard), the menu.
                await bob.dial(ACCESS)
                await bob.wait_event("CALL_ESTABLISHED", timeout=10)
                await bobs.wait_for("voicemail.heard", within=15, id=message_id)
                await asyncio.sleep(KEY_GAP)
                await keys(bob, "3")
                await bobs.wait_for("voicemail.deleted", within=5, id=message_id)
                # No message left: '#' is goodbye, and the server hangs up.
                await keys(bob, "#")
                await bob.wait_event("CALL_CLOSED", timeout=10)
                listed = (await client.get("/api/v1/me/voicemail", headers=auth)).json()
                samples, rate = bob.received_samples()
        assert listed == []
        assert not list((tmp_path / "data" / "voicemail").rglob("*.wav"))
    heard = audio.timeline(samples, rate, TONES)
    summary = audio.describe(heard)
    elodie = [i for i, tone in enumerate(heard) if tone == ALICE_TONE]
    spoken = audio.other_sound_frames(samples, rate, TONES)
    # The count came first, then Élodie's message (most of its 3 s), then the menu.
    assert len(elodie) * audio.FRAME_MS / 1000 > 1.5, summary
    assert sum(1 for i in spoken if i < elodie[0]) * audio.FRAME_MS / 1000 > 1.0, summary
    assert any(i > elodie[-1] for i in spoken), summary


async def test_a_pin_guards_the_box_and_lucas_records_his_greeting(tmp_path: Path) -> None:
    plan = acme_plan(5999, extra=PIN_PLAN)
    async with in_process_server(tmp_path, plan, ring_timeout=2.0) as server:
        alice, bob, carol = phones_bob_answering(server, tmp_path)
        async with httpx.AsyncClient(base_url=base_url(server)) as client:
            auth = {"Authorization": f"Bearer {await token_of(client, '1002')}"}
            meeting = await client.put("/api/v1/me/status", headers=auth, json={"key": "meeting"})
            assert meeting.status_code == 200
            async with alice, bob, carol:
                for phone in (alice, bob):
                    await phone.wait_event("REGISTER_OK", timeout=10)
                await bob.dial(ACCESS)
                await bob.wait_event("CALL_ESTABLISHED", timeout=10)
                await asyncio.sleep(1.0)
                await keys(bob, "1#")  # wrong: "wrong PIN", then the PIN prompt again
                await asyncio.sleep(1.0)
                await keys(bob, "4321#")
                # "No new messages", then the greeting menu: 5 records it.
                await asyncio.sleep(3.0)
                await keys(bob, "5")
                # The instructions and the beep, then Lucas's tone for about 3 s.
                await asyncio.sleep(7.0)
                await keys(bob, "#")
                await asyncio.sleep(2.0)  # "greeting saved", the greeting menu again
                await keys(bob, "#")
                await bob.wait_event("CALL_CLOSED", timeout=10)
                # Élodie calls Lucas: his own greeting (his tone) answers.
                await alice.dial(f"sip:1002@{DOMAIN}")
                await alice.wait_event("CALL_ESTABLISHED", timeout=10)
                await asyncio.sleep(4.0)
                await alice.hangup()
                await alice.wait_event("CALL_CLOSED", timeout=10)
                heard_by_elodie = alice.received_audio(TONES)
        assert server.db is not None
        async with server.db.session() as session:
            user_id = await session.scalar(select(User.id).where(User.extension == "1002"))
            [box] = await session.scalars(select(VoicemailBox))
        assert box.greeting_path is not None and box.greeting_path.endswith(
            f"/greetings/{user_id}.wav"
        )
        greeting = (tmp_path / "data" / box.greeting_path).read_bytes()
    assert tone_seconds(greeting, BOB_TONE) > 1.5
    lucas = sum(1 for tone in heard_by_elodie if tone == BOB_TONE) * audio.FRAME_MS / 1000
    assert lucas > 1.5, audio.describe(heard_by_elodie)
