"""The conference mixer on real relay sides: UDP sockets on 127.0.0.1 stand in for the
phones, each sending its own tone as PCMU RTP, and what each receives is decoded."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import numpy as np
import pytest

from nuage.media import g711
from nuage.media.engine import LocalMediaEngine
from nuage.media.mixer import ConferenceMixer, Member
from nuage.media.player import UnsupportedCodecError
from nuage.media.rtcp import ReportBlock, SenderReport
from nuage.media.rtcp_sender import ReportSettings
from nuage.media.rtp import RtpPacket, RtpSender
from nuage.media.sdp import RtpMap

from . import free_udp_port_range
from .test_relay import HOST, Phone, phone, until
from .test_rtp_player import (
    CNAME,
    REPORT_INTERVAL,
    check_bye,
    check_sender_reports,
    rtp_and_rtcp_sockets,
)

PCMU = RtpMap(0, "PCMU", 8000)
G729 = RtpMap(18, "G729", 8000)
TONES = (700.0, 1100.0, 1700.0)


def tone_frame(frequency: float, index: int) -> g711.Pcm:
    t = (np.arange(160) + index * 160) / 8000
    return (8000 * np.sin(2 * math.pi * frequency * t)).astype(np.int16)


def power(pcm: np.ndarray, frequency: float) -> float:
    """Share of ``pcm``'s energy at ``frequency`` (a DFT bin)."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / 8000)
    near = np.abs(freqs - frequency) <= 10
    return float(spectrum[near].sum() / max(spectrum.sum(), 1e-9))


@pytest.fixture
async def engine() -> AsyncIterator[LocalMediaEngine]:
    low = free_udp_port_range(40)
    media = LocalMediaEngine(HOST, low, low + 39)
    yield media
    await media.close()


async def talk(party: Phone, port: int, frequency: float, frames: int) -> None:
    sender = RtpSender(0)
    for index in range(frames):
        party.send(sender.packet(g711.ulaw_encode(tone_frame(frequency, index)), 160), port)
        await asyncio.sleep(0.02)


def heard(party: Phone) -> np.ndarray:
    payloads = []
    while not party.received.empty():
        data, _ = party.received.get_nowait()
        payloads.append(g711.ulaw_decode(RtpPacket.parse(data).payload))
    return np.concatenate(payloads) if payloads else np.zeros(0, dtype=np.int16)


async def conference_of_three(
    engine: LocalMediaEngine,
) -> tuple[ConferenceMixer, list[Phone], list[Member], list[int]]:
    mixer = ConferenceMixer(engine.clock)
    parties, members, ports = [], [], []
    for _ in TONES:
        side = (await engine.create_session()).a
        party = await phone()
        side.set_remote(HOST, party.port)
        members.append(mixer.add(side, {0: PCMU}, PCMU))
        parties.append(party)
        ports.append(side.rtp_port)
    return mixer, parties, members, ports


async def test_each_member_hears_the_others_and_not_itself(engine: LocalMediaEngine) -> None:
    mixer, parties, _, ports = await conference_of_three(engine)
    await asyncio.gather(
        *(talk(p, port, f, 60) for p, port, f in zip(parties, ports, TONES, strict=True))
    )
    mixer.close()
    for party, own in zip(parties, TONES, strict=True):
        received = heard(party)
        assert len(received) >= 40 * 160
        # The steady middle: the jitter buffer's start-up and the end are left out.
        middle = received[len(received) // 3 : 2 * len(received) // 3]
        others = [f for f in TONES if f != own]
        assert all(power(middle, f) > 0.3 for f in others), [power(middle, f) for f in TONES]
        assert power(middle, own) < 0.01


async def test_a_muted_member_is_neither_heard_nor_sent_anything(
    engine: LocalMediaEngine,
) -> None:
    mixer, parties, members, ports = await conference_of_three(engine)
    members[2].muted = True
    await asyncio.gather(
        *(talk(p, port, f, 40) for p, port, f in zip(parties, ports, TONES, strict=True))
    )
    mixer.close()
    assert heard(parties[2]).size == 0
    middle = heard(parties[0])[20 * 160 : 35 * 160]
    assert power(middle, TONES[1]) > 0.8 and power(middle, TONES[2]) < 0.01


async def test_a_removed_member_gets_its_side_back_silent(engine: LocalMediaEngine) -> None:
    mixer, parties, members, ports = await conference_of_three(engine)
    mixer.remove(members[0])
    assert members[0].side.hears == "nothing"  # type: ignore[attr-defined]
    assert len(mixer) == 2
    heard(parties[0])  # what it got while a member
    await talk(parties[1], ports[1], TONES[1], 10)
    assert heard(parties[0]).size == 0
    mixer.close()
    assert len(mixer) == 0 and len(engine.clock) == 0


async def test_garbage_and_silence_do_not_break_the_mix(engine: LocalMediaEngine) -> None:
    mixer, parties, _, ports = await conference_of_three(engine)
    for junk in (b"", b"\x80", b"\xff" * 40, b"\x80\x00" + b"\x00" * 10):
        parties[0].send(junk, ports[0])
    await talk(parties[1], ports[1], TONES[1], 30)
    mixer.close()
    # Party 0 sent only garbage, party 2 nothing: both still hear party 1.
    for party in (parties[0], parties[2]):
        assert power(heard(party)[10 * 160 :], TONES[1]) > 0.8


async def test_a_codec_that_cannot_be_mixed_is_refused(engine: LocalMediaEngine) -> None:
    mixer = ConferenceMixer(engine.clock)
    side = (await engine.create_session()).a
    with pytest.raises(UnsupportedCodecError):
        mixer.add(side, {18: G729}, G729)
    assert len(mixer) == 0 and side.hears == "peer"


async def test_each_member_gets_sender_reports_and_a_bye_when_it_leaves() -> None:
    low = free_udp_port_range(20)
    reports = ReportSettings(cname=CNAME, interval=REPORT_INTERVAL, uniform=lambda: 0.5)
    engine = LocalMediaEngine(HOST, low, low + 19, reports=reports)
    try:
        mixer = ConferenceMixer(engine.clock)
        parties, members = [], []
        for _ in range(3):
            side = (await engine.create_session()).a
            rtp, rtcp = await rtp_and_rtcp_sockets()
            side.set_remote(HOST, rtp.port)  # RTCP to the next port
            members.append(mixer.add(side, {0: PCMU}, PCMU))
            parties.append((rtp, rtcp))
        await until(lambda: all(len(rtcp.datagrams) >= 3 for _, rtcp in parties))
        mixer.remove(members[0])
        await until(parties[0][1].said_bye)
        await asyncio.sleep(0.05)
        assert not any(rtcp.said_bye() for _, rtcp in parties[1:])
        mixer.close()
        for _, rtcp in parties[1:]:
            await until(rtcp.said_bye)
        for member, (rtp, rtcp) in zip(members, parties, strict=True):
            # Each party's reports are about the stream it hears, under its own SSRC.
            assert check_sender_reports(rtp, rtcp, 8000) == member.ssrc
            check_bye(rtcp, member.ssrc, rtp)
        assert len({member.ssrc for member in members}) == 3
    finally:
        await engine.close()


async def test_a_members_reports_carry_a_block_about_the_stream_it_sends() -> None:
    """Nobody but the server receives a member's stream: the server's reports to it say
    how that stream arrives (RFC 3550 6.4)."""
    low = free_udp_port_range(8)
    reports = ReportSettings(cname=CNAME, interval=REPORT_INTERVAL, uniform=lambda: 0.5)
    engine = LocalMediaEngine(HOST, low, low + 7, reports=reports)
    try:
        mixer = ConferenceMixer(engine.clock)
        side = (await engine.create_session()).a
        rtp, rtcp = await rtp_and_rtcp_sockets()
        side.set_remote(HOST, rtp.port)
        mixer.add(side, {0: PCMU}, PCMU)
        sender = RtpSender(0)
        for index in range(25):
            if index != 10:  # one lost on the way
                payload = g711.ulaw_encode(tone_frame(TONES[0], index))
                rtp.transport.sendto(sender.packet(payload, 160), (HOST, side.rtp_port))
            else:
                sender.sequence += 1
            await asyncio.sleep(0.02)

        def blocks() -> list[ReportBlock]:
            return [
                block
                for packets, _ in rtcp.compounds()
                for packet in packets
                if isinstance(packet, SenderReport)
                for block in packet.reports
            ]

        await until(lambda: any(block.cumulative_lost for block in blocks()))
        mixer.close()
    finally:
        await engine.close()
    block = blocks()[-1]
    assert block.ssrc == sender.ssrc and block.cumulative_lost == 1
