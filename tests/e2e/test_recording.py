"""Recording a call from a SIP phone with the *1 feature code: both parties hear a beep,
the stereo file holds each party in its own channel, and the recording is registered
with the call record, owned by who started it."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from e2e.server import DOMAIN, acme_plan, running_nuage
from e2e.test_audio_baresip import ALICE_TONE, BOB_TONE, TONES, _phones, connect
from nuage.media.prompts import BEEP_FREQUENCY
from peers import audio


def _channels(path: Path) -> tuple[audio.Samples, audio.Samples, int]:
    with wave.open(str(path), "rb") as recording:
        assert recording.getnchannels() == 2
        assert recording.getsampwidth() == 2
        rate = recording.getframerate()
        frames = recording.readframes(recording.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64) / 32768
    return samples[0::2], samples[1::2], rate


# With G.722 the server decodes (the recording) and encodes (the beep) a stateful codec.
@pytest.mark.parametrize("codec", [("pcmu", 8000), ("g722/16000", 16000)], ids=["PCMU", "G722"])
async def test_star_one_records_the_call_in_stereo(tmp_path: Path, codec: tuple[str, int]) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice, bob = _phones(tmp_path, nuage, codec=codec)
        async with alice, bob:
            await connect(alice, bob)
            await asyncio.sleep(1)
            await alice.command("sndcode", "*1")
            await nuage.wait_for_counter("recordings_active", 1, within=5)
            await asyncio.sleep(3)
            await alice.command("sndcode", "*1")
            await nuage.wait_for_counter("recordings_active", 0, within=5)
            await asyncio.sleep(1)
            await alice.hangup()
            await bob.wait_event("CALL_CLOSED", timeout=10)
            heard_by_bob = bob.received_samples()
        await nuage.assert_idle()
        calls = await nuage.cli("calls", "--company", DOMAIN)
    files = sorted((tmp_path / "nuage" / "data" / "recordings").rglob("*.wav"))
    assert len(files) == 1, files
    left, right, rate = _channels(files[0])
    assert 2.5 < len(left) / rate < 4.5
    heard_left = audio.timeline(left, rate, TONES)
    heard_right = audio.timeline(right, rate, TONES)
    assert audio.share(heard_left, ALICE_TONE) > 0.8, audio.describe(heard_left)
    assert audio.share(heard_right, BOB_TONE) > 0.8, audio.describe(heard_right)
    # Registered with the call, owned by Alice (user 1), stopped by her second *1.
    assert "recording recordings/" in calls and "stopped by user" in calls, calls
    # The beep interrupted what Bob heard from Alice for a moment.
    samples, bob_rate = heard_by_bob
    bob_timeline = audio.timeline(samples, bob_rate, (*TONES, BEEP_FREQUENCY))
    assert BEEP_FREQUENCY in bob_timeline, audio.describe(bob_timeline)


async def test_a_company_can_announce_recording_with_a_voice(tmp_path: Path) -> None:
    plan = acme_plan(5999).replace(
        'language = "fr"', 'language = "fr"\nrecording_announcement = "voice"'
    )
    async with running_nuage(tmp_path / "nuage", plan) as nuage:
        alice, bob = _phones(tmp_path, nuage)
        async with alice, bob:
            await connect(alice, bob)
            await asyncio.sleep(1.1)
            await alice.command("sndcode", "*1")
            await nuage.wait_for_counter("recordings_active", 1, within=5)
            await asyncio.sleep(3)
            await alice.hangup()
            await bob.wait_event("CALL_CLOSED", timeout=10)
            samples, rate = bob.received_samples()
        await nuage.assert_idle()
    heard = audio.timeline(samples, rate, (*TONES, BEEP_FREQUENCY))
    spoken = audio.other_sound_frames(samples, rate, (*TONES, BEEP_FREQUENCY))
    # "Cet appel est enregistré." (about 1.5 s) instead of Alice, and no beep.
    assert len(spoken) * audio.FRAME_MS / 1000 > 1.0, audio.describe(heard)
    assert BEEP_FREQUENCY not in heard, audio.describe(heard)
    assert audio.share(heard[-50:], ALICE_TONE) > 0.8, audio.describe(heard)
