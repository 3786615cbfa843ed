"""One direction of a transcoded call, packet by packet."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from nuage.media import g711
from nuage.media.codecs import decoder_for
from nuage.media.rtcp import Bye, SenderReport, parse_compound
from nuage.media.rtcp_sender import ReportSettings
from nuage.media.rtp import RtpPacket, RtpSender
from nuage.media.sdp import RtpMap
from nuage.media.transcode import TranscodedDirection

PCMU = RtpMap(0, "PCMU", 8000)
G722 = RtpMap(9, "G722", 8000)
OPUS = RtpMap(111, "opus", 48000, 2)


def tone(index: int, samples: int = 160, frequency: float = 1000.0) -> g711.Pcm:
    t = (np.arange(samples) + index * samples) / 8000
    return (8000 * np.sin(2 * math.pi * frequency * t)).astype(np.int16)


def run(target: RtpMap, packets: list[bytes]) -> list[RtpPacket]:
    out: list[bytes] = []
    direction = TranscodedDirection({0: PCMU}, 101, target, 96, out.append)
    for packet in packets:
        direction.packet(packet)
    return [RtpPacket.parse(data) for data in out]


def test_pcmu_becomes_g722_with_the_tone_and_the_timing_kept() -> None:
    sender = RtpSender(0)
    packets = [sender.packet(g711.ulaw_encode(tone(i)), 160) for i in range(50)]
    del packets[20:23]  # three lost: the gap stays a gap in time, not in numbering
    out = run(G722, packets)
    assert len(out) == 47 and {p.payload_type for p in out} == {9}
    assert len({p.ssrc for p in out}) == 1 and out[0].ssrc != RtpPacket.parse(packets[0]).ssrc
    steps = [(b.timestamp - a.timestamp) % 2**32 for a, b in itertools.pairwise(out)]
    assert steps.count(160) == 45 and steps[19] == 4 * 160
    sequences = [(b.sequence - a.sequence) % 2**16 for a, b in itertools.pairwise(out)]
    assert set(sequences) == {1}
    decoder = decoder_for("G722", 8000)
    pcm = np.concatenate([decoder.decode(p.payload) for p in out])[1600:]
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    assert abs(np.fft.rfftfreq(len(pcm), 1 / 8000)[spectrum.argmax()] - 1000) < 20


def test_opus_uses_its_own_clock_and_30_ms_packets_are_reframed() -> None:
    sender = RtpSender(0)
    packets = [sender.packet(g711.ulaw_encode(tone(i, 240)), 240) for i in range(10)]
    out = run(OPUS, packets)
    assert len(out) == 15  # 300 ms in 20 ms frames
    steps = {(b.timestamp - a.timestamp) % 2**32 for a, b in itertools.pairwise(out)}
    assert steps == {960}


def test_events_are_renumbered_and_noise_and_garbage_dropped() -> None:
    audio, events, noise = RtpSender(0), RtpSender(101), RtpSender(13)
    events.ssrc = noise.ssrc = audio.ssrc
    packets = [
        audio.packet(g711.ulaw_encode(tone(0)), 160),
        events.packet(bytes([5, 0x0A, 0, 160]), 0, marker=True),
        noise.packet(b"\x40", 160),
        b"\x00garbage",
        b"",
    ]
    out = run(G722, packets)
    assert [p.payload_type for p in out] == [9, 96]
    assert out[1].payload == bytes([5, 0x0A, 0, 160]) and out[1].marker
    assert out[1].sequence == (out[0].sequence + 1) % 2**16


def test_the_transcoded_stream_has_sender_reports_and_a_bye() -> None:
    rtcp: list[bytes] = []
    out: list[bytes] = []
    direction = TranscodedDirection(
        {0: PCMU},
        None,
        G722,
        None,
        out.append,
        send_rtcp=rtcp.append,
        reports=ReportSettings(interval=0.002, uniform=lambda: 0.5),
    )
    sender = RtpSender(0)
    for index in range(3):
        direction.packet(sender.packet(g711.ulaw_encode(tone(index)), 160))
        time.sleep(0.003)
    direction.stop()
    direction.stop()  # once only
    ssrc = RtpPacket.parse(out[0]).ssrc
    [*reports, last] = [parse_compound(data) for data in rtcp]
    assert reports and all(isinstance(packets[0], SenderReport) for packets in reports)
    assert all(packets[0].ssrc == ssrc for packets in reports)
    assert any(isinstance(packet, Bye) and ssrc in packet.ssrcs for packet in last)
