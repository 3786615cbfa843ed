"""Two real softphones (baresip) registered to nuage call each other: audio checked by
content, and shown to flow through the server's relay ports."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from e2e.server import DOMAIN, USERS, acme_plan, running_nuage
from peers import audio
from peers.baresip import BaresipPhone

ALICE_TONE, BOB_TONE = 1000.0, 1500.0
TONES = (ALICE_TONE, BOB_TONE)


async def test_two_phones_talk_through_the_relay(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        proxy = f"sip:{nuage.sip_target}"
        alice_wav = audio.write_tone_wav(tmp_path / "alice.wav", ALICE_TONE)
        bob_wav = audio.write_tone_wav(tmp_path / "bob.wav", BOB_TONE)
        alice = BaresipPhone(
            tmp_path,
            "1001",
            tone_wav=alice_wav,
            domain=DOMAIN,
            password=USERS["1001"][2],
            proxy=proxy,
        )
        bob = BaresipPhone(
            tmp_path,
            "1002",
            tone_wav=bob_wav,
            domain=DOMAIN,
            password=USERS["1002"][2],
            proxy=proxy,
        )
        async with alice, bob:
            await alice.wait_event("REGISTER_OK", timeout=10)
            await bob.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:1002@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await bob.wait_event("CALL_ESTABLISHED", timeout=10)
            await asyncio.sleep(3)
            await alice.hangup()
            await bob.wait_event("CALL_CLOSED", timeout=10)
            heard_by_bob = bob.received_audio(TONES)
            heard_by_alice = alice.received_audio(TONES)
            bob_log = bob.log.read_text(errors="replace")
            alice_log = alice.log.read_text(errors="replace")
        config = nuage.config_path.read_text()
    rtp_min = int(re.search(r"rtp_port_min = (\d+)", config).group(1))  # type: ignore[union-attr]
    rtp_max = int(re.search(r"rtp_port_max = (\d+)", config).group(1))  # type: ignore[union-attr]

    assert audio.share(heard_by_bob, ALICE_TONE) > 0.8, audio.describe(heard_by_bob)
    assert audio.share(heard_by_alice, BOB_TONE) > 0.8, audio.describe(heard_by_alice)
    # Each phone received its RTP from the server's relay ports, never from the other phone.
    for log, other in ((alice_log, bob), (bob_log, alice)):
        sources = _rtp_sources(log)
        assert sources, log[-3000:]
        assert all(rtp_min <= port <= rtp_max for port in sources), (sources, rtp_min, rtp_max)
        assert not set(sources) & set(other.rtp_ports)


def _rtp_sources(log: str) -> list[int]:
    """The source ports baresip reports for the RTP it receives."""
    pattern = r"incoming rtp for 'audio' established, receiving from 127\.0\.0\.1:(\d+)"
    return [int(port) for port in re.findall(pattern, log)]
