"""Two real softphones (baresip) registered to nuage call each other: audio checked by
content, and shown to flow through the server's relay ports."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from e2e.server import DOMAIN, USERS, NuageProcess, acme_plan, running_nuage
from peers import audio
from peers.baresip import BaresipPhone

ALICE_TONE, BOB_TONE = 1000.0, 1500.0
TONES = (ALICE_TONE, BOB_TONE)


def _phones(
    tmp_path: Path,
    nuage: NuageProcess,
    alice_transport: str = "udp",
    codec: tuple[str, int] = ("pcmu", 8000),
    bob_codec: tuple[str, int] | None = None,
) -> tuple[BaresipPhone, BaresipPhone]:
    """Alice (1001, 1000 Hz) and Bob (1002, 1500 Hz), registering to ``nuage``, each
    offering only one codec (its baresip name and sampling rate): ``codec``, and for Bob
    ``bob_codec`` if given."""
    proxy = f"sip:{nuage.sip_target}"
    phones = []
    for extension, tone, transport, (name, rate) in (
        ("1001", ALICE_TONE, alice_transport, codec),
        ("1002", BOB_TONE, "udp", bob_codec or codec),
    ):
        wav = audio.write_tone_wav(tmp_path / f"{extension}.wav", tone, rate=rate)
        phones.append(
            BaresipPhone(
                tmp_path,
                extension,
                tone_wav=wav,
                domain=DOMAIN,
                password=USERS[extension][2],
                proxy=proxy,
                transport=transport,
                codecs=name,
            )
        )
    return phones[0], phones[1]


async def connect(alice: BaresipPhone, bob: BaresipPhone) -> None:
    """Both registered, Alice calls Bob, both in the call."""
    await alice.wait_event("REGISTER_OK", timeout=10)
    await bob.wait_event("REGISTER_OK", timeout=10)
    await alice.dial(f"sip:1002@{DOMAIN}")
    await alice.wait_event("CALL_ESTABLISHED", timeout=10)
    await bob.wait_event("CALL_ESTABLISHED", timeout=10)


async def test_two_phones_talk_through_the_relay(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice, bob = _phones(tmp_path, nuage)
        async with alice, bob:
            await connect(alice, bob)
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


async def test_a_phone_that_vanishes_mid_call_is_hung_up(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999), media_timeout=3) as nuage:
        alice, bob = _phones(tmp_path, nuage)
        async with alice, bob:
            await alice.wait_event("REGISTER_OK", timeout=10)
            await bob.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:1002@{DOMAIN}")
            await alice.wait_event("CALL_ESTABLISHED", timeout=10)
            await nuage.wait_for_calls(1)
            await bob.crash()
            # No BYE ever comes from bob: his silence ends the call for alice.
            await alice.wait_event("CALL_CLOSED", timeout=15)
        await nuage.assert_idle()


async def test_a_phone_on_tcp_calls_and_is_called(tmp_path: Path) -> None:
    """Alice registers over TCP: the server reaches her on her own connection."""
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice, bob = _phones(tmp_path, nuage, alice_transport="tcp")
        async with alice, bob:
            await alice.wait_event("REGISTER_OK", timeout=10)
            await bob.wait_event("REGISTER_OK", timeout=10)
            for caller, callee, number in ((alice, bob, "1002"), (bob, alice, "1001")):
                await caller.dial(f"sip:{number}@{DOMAIN}")
                await caller.wait_event("CALL_ESTABLISHED", timeout=10)
                await callee.wait_event("CALL_ESTABLISHED", timeout=10)
                await asyncio.sleep(1.5)
                await callee.hangup()
                await caller.wait_event("CALL_CLOSED", timeout=10)
                await callee.wait_event("CALL_CLOSED", timeout=10)
            heard_by_alice = alice.received_audio(TONES)
            heard_by_bob = bob.received_audio(TONES)
        await nuage.assert_idle()
    assert audio.share(heard_by_alice, BOB_TONE) > 0.7, audio.describe(heard_by_alice)
    assert audio.share(heard_by_bob, ALICE_TONE) > 0.7, audio.describe(heard_by_bob)


async def test_call_quality_from_the_phones_rtcp_is_kept_in_the_call_record(
    tmp_path: Path,
) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice, bob = _phones(tmp_path, nuage)
        async with alice, bob:
            await connect(alice, bob)
            # baresip reports every 5 s or so: two reports each way at least.
            await asyncio.sleep(11)
            await alice.hangup()
            await bob.wait_event("CALL_CLOSED", timeout=10)
        await nuage.assert_idle()
        calls = await nuage.cli("calls", "--company", DOMAIN)
    found = re.search(r"MOS (\d\.\d\d) \(worst (\d\.\d\d)\)", calls)
    assert found is not None, calls
    # Loopback loses nothing and adds no delay: the E-model's best for G.711.
    assert 4.3 <= float(found.group(2)) <= float(found.group(1)) <= 4.5, calls


async def test_phones_without_a_common_codec_talk_through_transcoding(tmp_path: Path) -> None:
    """Alice has only PCMU, Bob only G.722: Bob refuses the first offer, takes the one
    with the codecs the server transcodes, and each hears the other, also after a hold
    (music in Bob's codec meanwhile)."""
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        alice, bob = _phones(tmp_path, nuage, codec=("pcmu", 8000), bob_codec=("g722/16000", 16000))
        async with alice, bob:
            await connect(alice, bob)
            await asyncio.sleep(3)
            await alice.command("hold")
            await nuage.wait_for_counter("calls_on_hold", 1, within=5)
            await asyncio.sleep(2)
            await alice.command("resume")
            await nuage.wait_for_counter("calls_on_hold", 0, within=5)
            await asyncio.sleep(3)
            await alice.hangup()
            await bob.wait_event("CALL_CLOSED", timeout=10)
            heard_by_bob = bob.received_audio(TONES)
            heard_by_alice = alice.received_audio(TONES)
        await nuage.assert_idle()
        assert "transcoding between A and B" in nuage.log_path.read_text()
    # Bob: Alice, the music, Alice again; Alice: Bob before and after her hold.
    summary = audio.describe(heard_by_bob)
    assert audio.share(heard_by_bob[:100], ALICE_TONE) > 0.7, summary
    assert audio.share(heard_by_bob[-100:], ALICE_TONE) > 0.8, summary
    assert audio.share(heard_by_bob, None) > 0.15, summary  # the music: no test tone
    assert audio.share(heard_by_alice[-100:], BOB_TONE) > 0.8, audio.describe(heard_by_alice)
