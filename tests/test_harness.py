"""The peer harness proven on the peers themselves (sipp to sipp, baresip to baresip).

No server is involved: if these fail, the harness is broken, not Nuage.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from peers import audio
from peers.baresip import BaresipPhone
from peers.malformed import flood, malformed_messages, valid_invite
from peers.sipp import SippResult, SippServer, account_row, run_sipp

RATE = 8000
CALLER_HZ = 1000.0
CALLEE_HZ = 1500.0
CANDIDATES = (1000.0, 1500.0, 2000.0)
DOMAIN = "acme.example"


# --- audio ---------------------------------------------------------------------------


def test_a_tone_is_detected() -> None:
    samples = audio.tone(1000, 0.5, RATE)
    assert audio.dominant_tone(samples, RATE, CANDIDATES) == 1000
    assert set(audio.timeline(samples, RATE, CANDIDATES)) == {1000}
    # Off-bin frequencies within a frame still land on the right candidate.
    assert audio.dominant_tone(audio.tone(2000, 0.02, RATE, 0.1), RATE, CANDIDATES) == 2000


def test_silence_is_silence() -> None:
    quiet = np.random.default_rng(1).normal(0, 0.001, RATE)
    assert audio.dominant_tone(np.zeros(RATE), RATE, CANDIDATES) is None
    assert set(audio.timeline(quiet, RATE, CANDIDATES)) == {None}


def test_mixed_tones_give_the_dominant_one() -> None:
    mix = audio.tone(1000, 0.2, RATE, 0.5) + audio.tone(1500, 0.2, RATE, 0.2)
    assert audio.dominant_tone(mix, RATE, CANDIDATES) == 1000
    # Noise or a tone that is no candidate is not claimed by any candidate.
    assert audio.dominant_tone(audio.tone(700, 0.2, RATE), RATE, CANDIDATES) is None
    noise = np.random.default_rng(2).normal(0, 0.3, RATE)
    assert audio.dominant_tone(noise, RATE, CANDIDATES) is None


def test_timeline_reads_whose_audio_in_which_order() -> None:
    samples = np.concatenate(
        [audio.tone(1000, 0.4, RATE), np.zeros(RATE // 5), audio.tone(1500, 0.4, RATE)]
    )
    frames = audio.timeline(samples, RATE, CANDIDATES)
    runs = audio.segments(frames)
    assert [(s.tone, s.frames) for s in runs] == [(1000, 20), (None, 10), (1500, 20)]
    assert audio.describe(frames) == "1000 Hz 0.40 s, silence 0.20 s, 1500 Hz 0.40 s"
    assert audio.share(frames, 1500) == pytest.approx(0.4)


def test_wav_round_trip_and_unfinished_header(tmp_path: Path) -> None:
    path = audio.write_tone_wav(tmp_path / "t.wav", 1000, 0.5, RATE, 0.5)
    samples, rate = audio.read_wav(path)
    assert rate == RATE
    assert len(samples) == RATE // 2
    assert np.max(np.abs(samples)) == pytest.approx(0.5, abs=1e-3)
    # A file still being written has zero RIFF and data sizes (libsndfile fills them
    # in on close); it must read to its end anyway.
    raw = bytearray(path.read_bytes())
    raw[4:8] = bytes(4)
    data = raw.index(b"data")
    raw[data + 4 : data + 8] = bytes(4)
    path.write_bytes(raw)
    assert len(audio.read_wav(path)[0]) == RATE // 2


def test_received_files_form_one_timeline_in_name_order(tmp_path: Path) -> None:
    # Written out of order on purpose: the names carry the streams' start times.
    audio.write_tone_wav(tmp_path / "dump-2024-01-01-10-00-05-dec.wav", 1500, 0.2)
    audio.write_tone_wav(tmp_path / "dump-2024-01-01-10-00-01-dec.wav", 1000, 0.2)
    audio.write_tone_wav(tmp_path / "dump-2024-01-01-10-00-01-enc.wav", 2000, 0.2)
    frames = audio.received_timeline(tmp_path, CANDIDATES)
    assert audio.describe(frames) == "1000 Hz 0.20 s, 1500 Hz 0.20 s"
    assert audio.received_timeline(tmp_path / "nothing", CANDIDATES) == []


# --- malformed SIP -------------------------------------------------------------------


def test_malformed_cases_are_many_distinct_and_repeatable() -> None:
    cases = malformed_messages()
    names = [name for name, _ in cases]
    assert len(names) == len(set(names)) >= 50
    assert cases == malformed_messages()
    assert all(payload != valid_invite(n) for n in range(8) for _, payload in cases)
    assert max(len(p) for _, p in cases) <= 65507


# --- sipp ----------------------------------------------------------------------------


@pytest.mark.peers
async def test_sipp_builtin_uac_to_uas(tmp_path: Path) -> None:
    async with SippServer("uas", workdir=tmp_path, calls=5) as uas:
        result = await run_sipp("uac", uas.address, workdir=tmp_path, calls=5, rate=50)
        result.assert_ok(calls=5)
        assert (result.successful, result.failed, result.created) == (5, 0, 5)
        served = await uas.wait(15)
    served.assert_ok(calls=5)


@pytest.mark.peers
async def test_sipp_register_scenarios(tmp_path: Path) -> None:
    right = account_row("1001", "sip-secret", DOMAIN)
    async with SippServer("registrar_uas.xml", workdir=tmp_path, inject=[right], calls=2) as reg:
        ok = await run_sipp("register_auth.xml", reg.address, workdir=tmp_path, inject=[right])
        ok.assert_ok(calls=1)
        wrong = account_row("1001", "not-the-secret", DOMAIN)
        refused = await run_sipp(
            "register_wrong_password.xml", reg.address, workdir=tmp_path, inject=[wrong]
        )
        refused.assert_ok(calls=1)
        (await reg.wait(10)).assert_ok(calls=2)
    # The same wrong-password scenario fails when the server accepts the password: it
    # checks the refusal, it does not just run.
    async with SippServer("registrar_uas.xml", workdir=tmp_path, inject=[right], calls=1) as reg:
        accepted = await run_sipp(
            "register_wrong_password.xml", reg.address, workdir=tmp_path, inject=[right]
        )
    assert accepted.failed == 1, accepted.diagnosis()


async def _pair(
    tmp_path: Path, uas_scenario: str, uac_scenario: str, **uac: object
) -> tuple[SippResult, SippResult]:
    name = f"{uac_scenario}-vs-{uas_scenario}".replace(".xml", "")
    async with SippServer(
        uas_scenario, workdir=tmp_path / name, calls=1, hold_ms=200, timeout=15
    ) as uas:
        caller = await run_sipp(
            uac_scenario,
            uas.address,
            workdir=tmp_path / name,
            inject=[account_row("1001", "sip-secret", DOMAIN)],
            service="1002",
            hold_ms=200,
            timeout=15,
            **uac,  # type: ignore[arg-type]
        )
        callee = await uas.wait(10)
    return caller, callee


@pytest.mark.peers
async def test_sipp_call_scenarios_against_each_other(tmp_path: Path) -> None:
    pairs = {
        "caller hangs up": ("uas_answer.xml", "uac_call_hangup.xml", {}),
        "callee hangs up": ("uas_hangup.xml", "uac_wait_bye.xml", {}),
        "cancel while ringing": ("uas_ring_forever.xml", "uac_cancel.xml", {}),
        "busy": ("uas_busy.xml", "uac_expect_status.xml", {"keys": {"status": "486"}}),
    }
    results = await asyncio.gather(
        *(_pair(tmp_path, uas, uac, **kw) for uas, uac, kw in pairs.values())
    )
    for caller, callee in results:
        caller.assert_ok(calls=1)
        callee.assert_ok(calls=1)

    wrong, _ = await _pair(
        tmp_path / "wrong", "uas_busy.xml", "uac_expect_status.xml", keys={"status": "404"}
    )
    assert wrong.failed == 1, wrong.diagnosis()
    assert "expected 404, got 486" in wrong.actions.read_text()


class _Sink(asyncio.DatagramProtocol):
    def __init__(self, received: list[bytes], arrived: asyncio.Event) -> None:
        self.received = received
        self.arrived = arrived

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.append(data)
        self.arrived.set()


async def test_flood_delivers_every_case_intact() -> None:
    # sipp is no flood target (it takes near-valid INVITEs as calls), so plain sockets
    # check that each case reaches the wire whole, over UDP and over TCP.
    payloads = [payload for _, payload in malformed_messages()]
    datagrams: list[bytes] = []
    streams: list[bytes] = []
    arrived = asyncio.Event()

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        streams.append(await reader.read())
        writer.close()
        arrived.set()

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Sink(datagrams, arrived), local_addr=("127.0.0.1", 0)
    )
    server = await asyncio.start_server(keep, "127.0.0.1", 0)
    try:
        udp_port = transport.get_extra_info("sockname")[1]
        tcp_port = server.sockets[0].getsockname()[1]
        assert await flood("127.0.0.1", udp_port, payloads, repeat=2) == 2 * len(payloads)
        assert await flood("127.0.0.1", tcp_port, payloads, transport="tcp") == len(payloads)
        async with asyncio.timeout(5):
            while len(datagrams) < 2 * len(payloads) or len(streams) < len(payloads):
                arrived.clear()
                await arrived.wait()
    finally:
        transport.close()
        server.close()
    assert sorted(datagrams) == sorted(payloads * 2)
    assert sorted(streams) == sorted(payloads)


# --- baresip -------------------------------------------------------------------------


@pytest.mark.peers
async def test_baresip_phones_call_each_other_directly(tmp_path: Path) -> None:
    caller_wav = audio.write_tone_wav(tmp_path / "caller.wav", CALLER_HZ, 10, RATE)
    callee_wav = audio.write_tone_wav(tmp_path / "callee.wav", CALLEE_HZ, 10, RATE)
    async with (
        BaresipPhone(tmp_path, "alice", tone_wav=caller_wav) as alice,
        BaresipPhone(tmp_path, "bob", tone_wav=callee_wav) as bob,
    ):
        await alice.dial(bob.uri)
        await alice.wait_event("CALL_RINGING", 5)
        await alice.wait_event("CALL_ESTABLISHED", 5)
        await bob.wait_event("CALL_ESTABLISHED", 5)
        await asyncio.sleep(2)
        await alice.hangup()
        await alice.wait_event("CALL_CLOSED", 5)
        await bob.wait_event("CALL_CLOSED", 5)

        heard_by_bob = bob.received_audio(CANDIDATES)
        heard_by_alice = alice.received_audio(CANDIDATES)
    assert len(heard_by_bob) >= 75, audio.describe(heard_by_bob)
    assert audio.share(heard_by_bob, CALLER_HZ) > 0.9, audio.describe(heard_by_bob)
    assert len(heard_by_alice) >= 75, audio.describe(heard_by_alice)
    assert audio.share(heard_by_alice, CALLEE_HZ) > 0.9, audio.describe(heard_by_alice)


@pytest.mark.peers
async def test_baresip_manual_answer_and_callee_hangup(tmp_path: Path) -> None:
    wav = audio.write_tone_wav(tmp_path / "tone.wav", 2000, 10, RATE)
    async with (
        BaresipPhone(tmp_path, "carol", tone_wav=wav) as carol,
        BaresipPhone(tmp_path, "dave", tone_wav=wav, answermode="manual") as dave,
    ):
        await carol.dial(dave.uri)
        incoming = await dave.wait_event("CALL_INCOMING", 5)
        assert carol.user in str(incoming.data.get("peeruri"))
        await carol.wait_event("CALL_RINGING", 5)
        await dave.accept()
        await carol.wait_event("CALL_ESTABLISHED", 5)
        await dave.hangup()
        await carol.wait_event("CALL_CLOSED", 5)
        await dave.wait_event("CALL_CLOSED", 5)


@pytest.mark.peers
async def test_baresip_registers_with_digest(tmp_path: Path) -> None:
    wav = audio.write_tone_wav(tmp_path / "tone.wav", 1000, 1, RATE)
    rows = [account_row("1001", "sip-secret", DOMAIN)]
    async with (
        SippServer("registrar_uas.xml", workdir=tmp_path, inject=rows, calls=1) as reg,
        BaresipPhone(
            tmp_path,
            "1001",
            tone_wav=wav,
            domain=DOMAIN,
            password="sip-secret",
            proxy=f"sip:{reg.address}",
        ) as phone,
    ):
        await phone.wait_event("REGISTER_OK", 5)
        (await reg.wait(5)).assert_ok(calls=1)
        # Nobody answers its un-REGISTER now: do not wait the default grace for it.
        await phone.stop(grace=0.5)
