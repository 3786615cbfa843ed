"""Hold and resume between two real phones: the held party hears the server's music on
hold, the holder hears nothing, and both hear each other again after the resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from e2e.server import acme_plan, running_nuage
from e2e.test_audio_baresip import ALICE_TONE, BOB_TONE, TONES, _phones, connect
from peers import audio

HOLD_SECONDS = 4.0


# G.722 is stateful and wideband: the music is encoded by PyAV, on the codec's own clock.
@pytest.mark.parametrize("codec", [("pcmu", 8000), ("g722/16000", 16000)], ids=["PCMU", "G722"])
async def test_held_party_hears_music_then_both_talk_again(
    tmp_path: Path, codec: tuple[str, int]
) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice, bob = _phones(tmp_path, nuage, codec=codec)
        async with alice, bob:
            await connect(alice, bob)
            await asyncio.sleep(2)
            await alice.command("hold")
            await nuage.wait_for_counter("calls_on_hold", 1, within=5)
            await asyncio.sleep(HOLD_SECONDS)
            await alice.command("resume")
            await nuage.wait_for_counter("calls_on_hold", 0, within=5)
            await asyncio.sleep(2.5)
            await alice.hangup()
            await bob.wait_event("CALL_CLOSED", timeout=10)
            bob_samples, bob_rate = bob.received_samples()
            alice_samples, alice_rate = alice.received_samples()
        await nuage.assert_idle()

    heard_by_bob = audio.timeline(bob_samples, bob_rate, TONES)
    music = audio.other_sound_frames(bob_samples, bob_rate, TONES)
    alice_frames = [i for i, tone in enumerate(heard_by_bob) if tone == ALICE_TONE]
    summary = audio.describe(heard_by_bob)
    # Bob: Alice, then music for most of the hold, then Alice again.
    assert len(music) * audio.FRAME_MS / 1000 > 0.7 * HOLD_SECONDS, summary
    assert alice_frames and alice_frames[0] < music[0], summary
    assert [i for i in alice_frames if i > music[-1]], summary
    assert not [i for i in alice_frames if music[0] < i < music[-1]], summary
    # Alice: Bob before the hold and after the resume; none of the music.
    heard_by_alice = audio.timeline(alice_samples, alice_rate, TONES)
    tail = heard_by_alice[-50:]
    assert audio.share(tail, BOB_TONE) > 0.5, audio.describe(heard_by_alice)
    assert len(audio.other_sound_frames(alice_samples, alice_rate, TONES)) < 25, audio.describe(
        heard_by_alice
    )
