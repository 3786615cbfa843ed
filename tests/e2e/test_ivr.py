"""A voice menu from a plan (F7): the server answers, plays the menu's prompt and routes by
the key the caller presses on a real phone (RFC 4733 from baresip)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from e2e.server import DOMAIN, USERS, acme_plan, running_nuage
from e2e.test_audio_baresip import ALICE_TONE, BOB_TONE, TONES, _phones
from nuage.media.dtmf import dtmf_tone
from peers import audio
from peers.sipp import account_row, run_sipp

MENU = """
[[ivrs]]
name = "Reception"
extension = "800"
prompt = "ivr_language"
timeout = {timeout}
attempts = {attempts}
[ivrs.keys]
"1" = "1003"
"2" = "1002"
"""


async def test_a_key_routes_the_caller_after_a_wrong_one(tmp_path: Path) -> None:
    plan = acme_plan(5999, extra=MENU.format(timeout=5, attempts=3))
    async with running_nuage(tmp_path / "nuage", plan) as nuage:
        alice, bob = _phones(tmp_path, nuage)
        async with alice, bob:
            for phone in (alice, bob):
                await phone.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:800@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await asyncio.sleep(2)  # part of the prompt
            await alice.command("sndcode", "9")  # no such choice: told so, menu again
            await asyncio.sleep(2)
            await alice.command("sndcode", "2")  # cuts the prompt short
            await bob.wait_event("CALL_ESTABLISHED", timeout=10)
            await asyncio.sleep(3)
            await alice.hangup()
            await bob.wait_event("CALL_CLOSED", timeout=10)
            alice_samples, rate = alice.received_samples()
            heard_by_bob = bob.received_audio(TONES)
        await nuage.assert_idle()
        calls = await nuage.cli("calls", "--company", DOMAIN)
    heard_by_alice = audio.timeline(alice_samples, rate, TONES)
    spoken = audio.other_sound_frames(alice_samples, rate, TONES)
    bob_frames = [i for i, tone in enumerate(heard_by_alice) if tone == BOB_TONE]
    summary = audio.describe(heard_by_alice)
    # Alice heard the menu's voice (over a second of it), then Bob for most of 3 s.
    assert len(spoken) * audio.FRAME_MS / 1000 > 1.0, summary
    assert bob_frames and spoken[0] < bob_frames[0], summary
    assert len(bob_frames) * audio.FRAME_MS / 1000 > 2.0, summary
    assert audio.share(heard_by_bob[-100:], ALICE_TONE) > 0.8, audio.describe(heard_by_bob)
    assert "1001 -> 800" in " ".join(calls.split()), calls


async def test_no_key_hears_goodbye_and_is_hung_up(tmp_path: Path) -> None:
    plan = acme_plan(5999, extra=MENU.format(timeout=1, attempts=1))
    async with running_nuage(tmp_path / "nuage", plan) as nuage:
        alice, bob = _phones(tmp_path, nuage)
        async with alice, bob:
            await alice.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:800@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            # The prompt (about 6 s), a second to key, goodbye, then the server hangs up.
            await alice.wait_event("CALL_CLOSED", timeout=15)
            samples, rate = alice.received_samples()
        await nuage.assert_idle()
    spoken = audio.other_sound_frames(samples, rate, TONES)
    assert len(spoken) * audio.FRAME_MS / 1000 > 4.0, audio.describe(
        audio.timeline(samples, rate, TONES)
    )


async def test_keys_sent_as_tones_in_the_audio_drive_the_menu(tmp_path: Path) -> None:
    """A caller without telephone-event (a carrier that keeps keys in-band): the tones of
    key 2 in its audio take it to Bob."""
    tones = np.concatenate((np.zeros(16000), dtmf_tone("2", 0.15) / 32768, np.zeros(8 * 8000)))
    audio.write_ulaw_wav(tmp_path / "keys.wav", tones)
    plan = acme_plan(5999, extra=MENU.format(timeout=5, attempts=3))
    async with running_nuage(tmp_path / "nuage", plan) as nuage:
        _, bob = _phones(tmp_path, nuage)
        async with bob:
            await bob.wait_event("REGISTER_OK", timeout=10)
            caller = await run_sipp(
                "uac_inband_dtmf.xml",
                nuage.sip_target,
                workdir=tmp_path,
                service="800",
                hold_ms=6000,
                inject=[account_row("1001", USERS["1001"][2], DOMAIN)],
            )
            caller.assert_ok(1)
            await bob.wait_event("CALL_ESTABLISHED", timeout=1)
            await bob.wait_event("CALL_CLOSED", timeout=10)
        await nuage.assert_idle()
