"""RTP packets, the shared 20 ms clock, sounds and music on hold, and the RTCP of the
streams the server sends (sender reports, BYE) as a phone receives it."""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from nuage.media import g711, music
from nuage.media.engine import LocalMediaEngine
from nuage.media.player import FrameClock, Playback, Sound, UnsupportedCodecError, can_encode
from nuage.media.rtcp import (
    Bye,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    ntp_to_unix,
    parse_compound,
)
from nuage.media.rtcp_sender import ReportSettings
from nuage.media.rtp import RtpError, RtpPacket, RtpSender
from nuage.media.sdp import RtpMap

from . import free_udp_port_range
from .test_relay import HOST, until

CNAME = "nuage@127.0.0.1"
REPORT_INTERVAL = 0.2
"""The RTCP interval of the tests' engines: the first report after 0.1 s, then every
0.2 s (the random spread is pinned to its middle)."""


def test_sender_numbers_packets_and_parse_reads_them_back() -> None:
    sender = RtpSender(8)
    first = RtpPacket.parse(sender.packet(b"\xd5" * 160, 160, marker=True))
    second = RtpPacket.parse(sender.packet(b"\x55" * 160, 160))
    assert (first.payload_type, first.marker, first.payload) == (8, True, b"\xd5" * 160)
    assert second.sequence == (first.sequence + 1) & 0xFFFF
    assert second.timestamp == (first.timestamp + 160) & 0xFFFFFFFF
    assert second.ssrc == first.ssrc and not second.marker


def test_parse_skips_csrcs_extension_and_padding() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0, 7, 1600, 42)
    csrcs = struct.pack("!II", 1, 2)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x00" * 4
    packet = header + csrcs + extension + b"abc" + b"\x00\x00\x03"
    parsed = RtpPacket.parse(packet)
    assert (parsed.sequence, parsed.ssrc, parsed.payload) == (7, 42, b"abc")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80\x00", b"\x40" + b"\x00" * 11, struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"\x09"],
)
def test_parse_rejects_what_is_not_rtp(data: bytes) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(data)


def test_music_on_hold_is_sixteen_seconds_of_unclipped_sound() -> None:
    pcm = music.render()
    assert len(pcm) == 16 * 8000
    assert 0 < np.max(np.abs(pcm.astype(np.int32))) < 32767
    frames = pcm.astype(np.float64).reshape(-1, 160) / 32768
    rms = np.sqrt(np.mean(frames**2, axis=1))
    # Music all along: no silent 20 ms frame, little energy at the test tones of 1 kHz and up.
    assert np.min(rms) > 0.005
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    frequencies = np.fft.rfftfreq(len(pcm), 1 / 8000)
    assert np.sum(spectrum[frequencies >= 950] ** 2) < 0.05 * np.sum(spectrum**2)


def test_a_sound_is_encoded_once_per_codec() -> None:
    pcm = (np.arange(800) % 100 * 100).astype(np.int16)
    sound = Sound("ramp", pcm)
    assert len(sound) == 5
    ulaw = sound.frames("pcmu", 8000)
    assert ulaw is sound.frames("PCMU", 8000)
    assert ulaw[1] == g711.ulaw_encode(pcm[160:320])
    assert sound.frames("PCMA", 8000)[0] == g711.alaw_encode(pcm[:160])
    assert can_encode("PCMU", 8000) and can_encode("opus", 48000)
    assert not can_encode("G729", 8000)
    with pytest.raises(UnsupportedCodecError):
        sound.frames("G729", 8000)


def test_wideband_codecs_play_one_payload_per_frame_with_their_clock() -> None:
    sound = Sound("tone", (np.sin(np.arange(1600) * 0.5) * 8000).astype(np.int16))
    sent: list[bytes] = []
    for encoding, rate, step in (("G722", 8000, 160), ("opus", 48000, 960)):
        sent.clear()
        playback = Playback(sound, encoding, rate, 101, sent.append, loop=False)
        for tick in range(12):
            playback.on_tick(tick)
        assert len(sent) == len(sound) == 10
        stamps = [int.from_bytes(packet[4:8], "big") for packet in sent]
        assert {b - a for a, b in itertools.pairwise(stamps)} == {step}
        assert all(packet[1] & 0x7F == 101 for packet in sent)


async def test_the_clock_ticks_every_20_ms_for_all_listeners_like_a_radio() -> None:
    pcm = np.repeat(np.arange(10, dtype=np.int16) * 1000, 160)
    sound = Sound("steps", pcm)
    clock = FrameClock()
    received: dict[str, list[bytes]] = {"one": [], "two": []}
    one = Playback(sound, "PCMU", 8000, 0, received["one"].append)
    two = Playback(sound, "PCMA", 8000, 8, received["two"].append)
    loop = asyncio.get_running_loop()
    started = loop.time()
    clock.add(one)
    clock.add(two)
    await asyncio.sleep(0.5)
    clock.remove(one)
    clock.remove(two)
    elapsed = loop.time() - started
    assert len(clock) == 0
    for name, payload_type in (("one", 0), ("two", 8)):
        packets = [RtpPacket.parse(data) for data in received[name]]
        # One packet per 20 ms, give or take a tick of scheduling.
        assert abs(len(packets) - elapsed / 0.02) <= 2
        assert packets[0].marker and not any(p.marker for p in packets[1:])
        assert {p.payload_type for p in packets} == {payload_type}
        assert all(b.timestamp - a.timestamp == 160 for a, b in itertools.pairwise(packets))
    # Both listeners heard the same frame of the sound at each tick.
    decoded_one = [
        int(g711.ulaw_decode(p.payload)[0]) for p in map(RtpPacket.parse, received["one"])
    ]
    decoded_two = [
        int(g711.alaw_decode(p.payload)[0]) for p in map(RtpPacket.parse, received["two"])
    ]
    assert [round(v, -3) for v in decoded_one] == [round(v, -3) for v in decoded_two]


# RTCP of the streams the server sends


def test_a_sound_played_once_ends_with_a_bye_before_then() -> None:
    sound = Sound("steps", np.repeat(np.arange(5, dtype=np.int16) * 1000, 160))
    events: list[tuple[str, bytes]] = []
    playback = Playback(
        sound,
        "PCMU",
        8000,
        0,
        lambda packet: events.append(("rtp", packet)),
        loop=False,
        then=lambda: events.append(("then", b"")),
        send_rtcp=lambda packet: events.append(("rtcp", packet)),
        reports=ReportSettings(cname=CNAME, interval=60.0),
    )
    for tick in range(8):
        playback.on_tick(tick)
    assert [kind for kind, _ in events] == ["rtp"] * 5 + ["rtcp", "then"]
    assert {RtpPacket.parse(packet).ssrc for kind, packet in events[:5]} == {playback.ssrc}
    report, sdes, bye = parse_compound(events[5][1])
    assert isinstance(report, SenderReport)
    assert (report.ssrc, report.packet_count, report.octet_count) == (playback.ssrc, 5, 800)
    assert sdes == SourceDescription.cname(playback.ssrc, CNAME)
    assert bye == Bye((playback.ssrc,))
    playback.stop()  # the owner stops it: the BYE is not repeated
    assert len(events) == 7


def test_a_playback_stopped_before_sending_sends_no_bye() -> None:
    sound = Sound("steps", np.zeros(800, dtype=np.int16))
    rtcp: list[bytes] = []
    playback = Playback(sound, "PCMA", 8000, 8, lambda _: None, send_rtcp=rtcp.append)
    playback.stop()
    assert rtcp == []


class Receiver(asyncio.DatagramProtocol):
    """One socket of a test phone: what it receives, with the Unix time it arrived."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, float]] = []
        self.transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((data, time.time()))

    @property
    def port(self) -> int:
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def compounds(self) -> list[tuple[list[RtcpPacket], float]]:
        return [(parse_compound(data), arrival) for data, arrival in self.datagrams]

    def said_bye(self) -> bool:
        return any(isinstance(packets[-1], Bye) for packets, _ in self.compounds())


async def rtp_and_rtcp_sockets() -> tuple[Receiver, Receiver]:
    """A phone's RTP socket and its RTCP socket on the next port, where the relay sends
    RTCP when the SDP does not say (RFC 3550 11)."""
    loop = asyncio.get_running_loop()
    for _ in range(50):
        base = free_udp_port_range(2)
        try:
            rtp_transport, rtp = await loop.create_datagram_endpoint(
                Receiver, local_addr=(HOST, base)
            )
        except OSError:
            continue
        try:
            _, rtcp = await loop.create_datagram_endpoint(Receiver, local_addr=(HOST, base + 1))
        except OSError:
            rtp_transport.close()
            continue
        return rtp, rtcp
    raise RuntimeError("no two consecutive free UDP ports")


# How far the media clock's times may stray from the wall clock's in these checks: three
# 20 ms ticks, as when a loaded machine (CI running other tests) runs the clock late.
TIMING_SLACK = 0.06


def check_sender_reports(rtp: Receiver, rtcp: Receiver, clock_rate: int) -> int:
    """Check every compound RTCP packet ``rtcp`` received against the RTP stream ``rtp``
    received; returns the stream's SSRC."""
    stream = [(RtpPacket.parse(data), arrival) for data, arrival in rtp.datagrams]
    ssrcs = {packet.ssrc for packet, _ in stream}
    assert len(ssrcs) == 1
    ssrc = ssrcs.pop()
    stamps = []
    for packets, arrival in rtcp.compounds():
        report, sdes = packets[:2]
        assert isinstance(report, SenderReport) and report.ssrc == ssrc
        assert sdes == SourceDescription.cname(ssrc, CNAME)
        before = [(packet, at) for packet, at in stream if at <= arrival]
        # The report went right after an RTP packet, which may arrive just after it.
        assert abs(report.packet_count - len(before)) <= 1
        octets = sum(len(packet.payload) for packet, _ in before)
        assert abs(report.octet_count - octets) <= max(len(p.payload) for p, _ in stream)
        # Its RTP timestamp is the stream's at its NTP time: the last packet's, moved on
        # by the time from that packet's arrival to the report's NTP time.
        last, last_arrival = before[-1]
        reported = ntp_to_unix(report.ntp_timestamp)
        ahead = ((report.rtp_timestamp - last.timestamp + 2**31) % 2**32 - 2**31) / clock_rate
        assert ahead == pytest.approx(reported - last_arrival, abs=TIMING_SLACK)
        if not isinstance(packets[-1], Bye):
            stamps.append((reported, report.rtp_timestamp))
    # Between two reports, as much RTP time as wall time went by; and the interval.
    for (t0, r0), (t1, r1) in itertools.pairwise(stamps):
        assert ((r1 - r0) % 2**32) / clock_rate == pytest.approx(t1 - t0, abs=TIMING_SLACK)
        # Never early; late by a tick or two, more on a busy machine.
        assert REPORT_INTERVAL - 0.005 < t1 - t0 < REPORT_INTERVAL + 0.15
    return ssrc


def check_bye(rtcp: Receiver, ssrc: int, rtp: Receiver) -> None:
    """The last compound packet: a last SR, the CNAME and the BYE of ``ssrc``."""
    packets, _ = rtcp.compounds()[-1]
    report, sdes, bye = packets
    assert isinstance(report, SenderReport) and report.ssrc == ssrc
    assert abs(report.packet_count - len(rtp.datagrams)) <= 1
    assert sdes == SourceDescription.cname(ssrc, CNAME)
    assert bye == Bye((ssrc,))
    assert sum(isinstance(packets[-1], Bye) for packets, _ in rtcp.compounds()) == 1


@pytest.fixture
async def engine() -> AsyncIterator[LocalMediaEngine]:
    low = free_udp_port_range(20)
    reports = ReportSettings(cname=CNAME, interval=REPORT_INTERVAL, uniform=lambda: 0.5)
    media = LocalMediaEngine(HOST, low, low + 19, reports=reports)
    yield media
    await media.close()


async def test_music_on_hold_comes_with_sender_reports_and_ends_with_a_bye(
    engine: LocalMediaEngine,
) -> None:
    rtp, rtcp = await rtp_and_rtcp_sockets()
    session = await engine.create_session()
    session.a.set_remote(HOST, rtp.port)  # RTCP to the next port
    session.a.play(engine.music_on_hold, RtpMap(0, "PCMU", 8000))
    await until(lambda: len(rtcp.datagrams) >= 3)
    session.a.relay()
    await until(rtcp.said_bye)
    # Nothing more once the music stopped.
    await asyncio.sleep(0.05)
    ssrc = check_sender_reports(rtp, rtcp, 8000)
    check_bye(rtcp, ssrc, rtp)
    assert len(rtcp.compounds()) >= 4
    assert session.b.rtcp_counters().packets_out == 0  # the other party got nothing


async def test_a_sound_played_once_says_bye_when_it_ends(engine: LocalMediaEngine) -> None:
    rtp, rtcp = await rtp_and_rtcp_sockets()
    session = await engine.create_session()
    session.a.set_remote(HOST, rtp.port)
    played = asyncio.Event()
    session.a.play(engine.beep, RtpMap(9, "G722", 8000), loop=False, then=played.set)
    await asyncio.wait_for(played.wait(), 2)
    await until(rtcp.said_bye)
    assert len(rtp.datagrams) == len(engine.beep)
    ssrc = check_sender_reports(rtp, rtcp, 8000)
    check_bye(rtcp, ssrc, rtp)
    session.a.relay()  # stopping it now sends no second BYE
    await asyncio.sleep(0.05)
    check_bye(rtcp, ssrc, rtp)


async def test_closing_the_session_says_bye(engine: LocalMediaEngine) -> None:
    rtp, rtcp = await rtp_and_rtcp_sockets()
    session = await engine.create_session()
    session.a.set_remote(HOST, rtp.port)
    session.a.play(engine.music_on_hold, RtpMap(8, "PCMA", 8000))
    await until(lambda: len(rtp.datagrams) >= 3)
    await session.close()
    await until(rtcp.said_bye)
    check_bye(rtcp, check_sender_reports(rtp, rtcp, 8000), rtp)
