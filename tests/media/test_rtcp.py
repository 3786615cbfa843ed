"""RTCP packets, RFC 3550 Appendix A reception statistics and the round trip time."""

from __future__ import annotations

import contextlib
import itertools
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuage.media.rtcp import (
    NTP_UNIX_OFFSET,
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpError,
    SdesChunk,
    SenderReport,
    SourceDescription,
    compact_ntp,
    compound,
    ntp_short,
    ntp_timestamp,
    ntp_to_unix,
    parse_compound,
    round_trip_time,
)
from nuage.media.rtcp_sender import ReportSettings, RtcpReporter, report_interval

BLOCK = ReportBlock(0xCAFEBABE, 51, 1234, 0x0001_0005, 320, 0x1234_5678, 0x0002_8000)
U32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock, U32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), U32, U32, U32, U32
)


def feed(stats: ReceptionStats, sequences: list[int], clock_rate: int = 8000) -> list[bool]:
    """Packets 20 ms apart carrying 20 ms of audio each: a constant transit time."""
    return [
        stats.receive(seq, seq * 160, 1000.0 + i * 0.02, clock_rate)
        for i, seq in enumerate(sequences)
    ]


# Packets


def test_sender_report_round_trip() -> None:
    report = SenderReport(42, ntp_timestamp(1_700_000_000.25), 160_000, 500, 80_000, (BLOCK,))
    data = report.to_bytes()
    assert len(data) == 28 + 24
    assert data[:4] == bytes((0x81, 200, 0, 12))
    assert parse_compound(data) == [report]


def test_compound_report_sdes_and_bye_round_trip() -> None:
    rr = ReceiverReport(7, (BLOCK, ReportBlock(9, 0, -3, 65_540, 0)))
    sdes = SourceDescription.cname(7, "nuage@192.0.2.1")
    bye = Bye((7, 8), "call ended")
    data = compound(rr, sdes, bye)
    assert len(data) % 4 == 0
    assert parse_compound(data) == [rr, sdes, bye]
    assert parse_compound(compound(ReceiverReport(7))) == [ReceiverReport(7)]


@pytest.mark.parametrize("cname", ["", "a", "ab", "abc", "abcd", "é" * 20, "x" * 255])
def test_sdes_chunks_end_with_a_null_octet_on_a_word_boundary(cname: str) -> None:
    chunk = SdesChunk(5, cname).to_bytes()
    assert len(chunk) % 4 == 0 and chunk[-1] == 0
    described = SourceDescription((SdesChunk(5, cname), SdesChunk(6, None), SdesChunk(7, "z")))
    assert parse_compound(described.to_bytes()) == [described]


def test_parse_reads_foreign_sdes_items_and_skips_unknown_packet_types() -> None:
    # An SDES chunk with NAME (2) before CNAME, and a PLI (206) and XR (207) around it.
    items = bytes((2, 3)) + b"Bob" + bytes((1, 4)) + b"host" + b"\x00"
    sdes = struct.pack("!BBHI", 0x81, 202, 4, 11) + items
    pli = struct.pack("!BBHII", 0x81, 206, 2, 11, 12)
    xr = struct.pack("!BBHI", 0x80, 207, 1, 11)
    parsed = parse_compound(ReceiverReport(11).to_bytes() + pli + sdes + xr)
    assert parsed == [ReceiverReport(11), SourceDescription((SdesChunk(11, "host"),))]
    assert parse_compound(pli) == []


def test_parse_strips_padding_and_ignores_profile_extensions() -> None:
    # An RR with one block, 4 bytes of profile extension, then 4 bytes of padding.
    body = struct.pack("!I", 3) + BLOCK.to_bytes() + b"ext!" + b"\x00\x00\x00\x04"
    packet = struct.pack("!BBH", 0xA1, 201, len(body) // 4) + body
    assert parse_compound(packet) == [ReceiverReport(3, (BLOCK,))]


def test_cumulative_loss_is_signed_24_bits() -> None:
    for lost in (-0x800000, -1, 0, 0x7FFFFF):
        block = ReportBlock(1, 0, lost, 0, 0)
        assert parse_compound(ReceiverReport(2, (block,)).to_bytes())[0] == ReceiverReport(
            2, (block,)
        )
    with pytest.raises(ValueError):
        ReportBlock(1, 0, 0x800000, 0, 0).to_bytes()
    with pytest.raises(ValueError):
        ReportBlock(1, 256, 0, 0, 0).to_bytes()
    with pytest.raises(ValueError):
        ReceiverReport(1, (BLOCK,) * 32).to_bytes()
    with pytest.raises(ValueError):
        SenderReport(1 << 32, 0, 0, 0, 0).to_bytes()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x81\xc9",  # shorter than a header
        struct.pack("!BBH", 0x40, 201, 1) + b"\x00" * 4,  # version 1
        struct.pack("!BBH", 0x80, 201, 2) + b"\x00" * 4,  # length beyond the datagram
        struct.pack("!BBH", 0x81, 201, 1) + b"\x00" * 4,  # a block announced, none there
        struct.pack("!BBH", 0x80, 200, 1) + b"\x00" * 4,  # SR without its sender info
        struct.pack("!BBH", 0x80, 201, 0),  # RR without its SSRC
        struct.pack("!BBH", 0xA0, 201, 1) + b"\x00" * 4,  # padding count 0
        struct.pack("!BBH", 0xA0, 201, 1) + b"\x00\x00\x00\x09",  # padding beyond the packet
        struct.pack("!BBHI", 0x81, 202, 2, 1) + bytes((1, 9, 0, 0)),  # SDES item too long
        struct.pack("!BBHI", 0x81, 202, 2, 1) + bytes((1, 2, 65, 66)),  # items not ended
        struct.pack("!BBHI", 0x82, 202, 2, 1) + b"\x00" * 4,  # second chunk missing
        struct.pack("!BBHI", 0x82, 203, 1, 1),  # BYE with one of two SSRCs
        struct.pack("!BBHI", 0x81, 203, 2, 1) + bytes((9, 65, 66, 67)),  # reason too long
        ReceiverReport(1).to_bytes() + b"\x80\xc9",  # trailing bytes
    ],
)
def test_parse_rejects_malformed_packets(data: bytes) -> None:
    with pytest.raises(RtcpError):
        parse_compound(data)


@given(st.binary(max_size=200))
def test_parse_raises_nothing_but_rtcp_error_on_random_bytes(data: bytes) -> None:
    with contextlib.suppress(RtcpError):
        parse_compound(data)


@st.composite
def plausible_packets(draw: st.DrawFn) -> bytes:
    """Version 2 headers with known types and consistent or near-miss lengths: random
    bytes alone rarely get past the header checks."""
    data = b""
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.binary(max_size=80))
        body += bytes(-len(body) % 4)
        words = len(body) // 4 + draw(st.sampled_from([0, 0, 0, 1, -1]))
        count = draw(st.integers(0, 2) | st.integers(0, 31))
        first = 0x80 | draw(st.sampled_from([0, 0, 0, 0x20])) | count
        packet_type = draw(st.sampled_from([200, 201, 202, 203, 204, 205, 206, 207]))
        data += struct.pack("!BBH", first, packet_type, max(0, words)) + body
    return data


@given(plausible_packets())
def test_parse_raises_nothing_but_rtcp_error_on_plausible_packets(data: bytes) -> None:
    with contextlib.suppress(RtcpError):
        parse_compound(data)


sender_reports = st.builds(
    SenderReport,
    U32,
    st.integers(0, (1 << 64) - 1),
    U32,
    U32,
    U32,
    st.lists(blocks, max_size=31).map(tuple),
)
receiver_reports = st.builds(ReceiverReport, U32, st.lists(blocks, max_size=31).map(tuple))
descriptions = st.builds(
    SourceDescription,
    st.lists(st.builds(SdesChunk, U32, st.none() | st.text(max_size=60)), max_size=31).map(tuple),
)
byes = st.builds(Bye, st.lists(U32, max_size=31).map(tuple), st.none() | st.text(max_size=60))


@given(sender_reports | receiver_reports, descriptions, byes)
def test_built_packets_parse_back_unchanged(
    report: SenderReport | ReceiverReport, sdes: SourceDescription, bye: Bye
) -> None:
    assert parse_compound(compound(report, sdes, bye)) == [report, sdes, bye]


# NTP times and the round trip


def test_ntp_timestamp_of_known_times() -> None:
    assert ntp_timestamp(0.0) == NTP_UNIX_OFFSET << 32
    assert ntp_timestamp(1.5) == (NTP_UNIX_OFFSET + 1) << 32 | 1 << 31
    assert ntp_short(0.5) == (NTP_UNIX_OFFSET & 0xFFFF) << 16 | 0x8000
    # 2036-02-07T06:28:16Z is the NTP era wrap: seconds restart from 0.
    assert ntp_timestamp(2_085_978_496.25) == 1 << 30
    for unix_time in (0.0, 1_700_000_000.125, 2_085_978_496.25, 3_000_000_000.5):
        assert ntp_to_unix(ntp_timestamp(unix_time)) == pytest.approx(unix_time, abs=1e-6)


def test_round_trip_time_from_lsr_and_dlsr() -> None:
    # We send an SR at t0; the peer receives it 40 ms later and reports 250 ms after
    # that; the report reaches us 60 ms later: the round trip is 100 ms.
    t0 = 1_700_000_000.0
    our_sr = SenderReport(0xA, ntp_timestamp(t0), 0, 10, 1600)
    peer = ReceptionStats(0xA)
    feed(peer, [1, 2, 3])
    peer.sender_report(our_sr, t0 + 0.040)
    block = peer.report_block(t0 + 0.290)
    assert block is not None
    assert block.last_sr == compact_ntp(our_sr.ntp_timestamp)
    assert block.delay_since_last_sr == pytest.approx(0.250 * 65536, abs=1)
    rtt = round_trip_time(block, t0 + 0.350)
    assert rtt == pytest.approx(0.100, abs=3 / 65536)


def test_round_trip_time_needs_an_sr_and_rejects_impossible_values() -> None:
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0), 1_700_000_000.0) is None
    now = 1_700_000_000.0
    lsr = ntp_short(now - 1.0)
    # The peer claims to have held our SR for 2 s though we sent it 1 s ago.
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, lsr, 2 * 65536), now) is None
    # Truncation can push a near-zero round trip just under zero.
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, lsr, 65536 + 2), now) == 0.0


def test_sender_report_from_another_source_is_refused() -> None:
    with pytest.raises(ValueError):
        ReceptionStats(1).sender_report(SenderReport(2, 0, 0, 0, 0), 0.0)


# Reception statistics (RFC 3550 Appendix A)


def test_probation_then_counting() -> None:
    stats = ReceptionStats(9)
    assert feed(stats, [100, 101, 102]) == [False, True, True]
    # The packet of the probation is not counted; the stream starts at 101.
    assert (stats.received, stats.expected, stats.lost) == (2, 2, 0)
    assert stats.extended_highest == 102


def test_no_report_while_on_probation() -> None:
    stats = ReceptionStats(9)
    assert stats.report_block(0.0) is None
    feed(stats, [7])
    assert stats.report_block(0.0) is None


def test_probation_restarts_on_a_gap() -> None:
    stats = ReceptionStats(9)
    assert feed(stats, [10, 12, 13, 14]) == [False, False, True, True]
    assert (stats.received, stats.expected) == (2, 2)


def test_sequence_wraps_at_65535() -> None:
    stats = ReceptionStats(9)
    assert all(feed(stats, [65532, 65533, 65534, 65535, 0, 1, 2])[1:])
    assert stats.cycles == 65536
    assert stats.extended_highest == 65536 + 2
    assert (stats.received, stats.lost) == (6, 0)
    block = stats.report_block(0.0)
    assert block is not None
    assert (block.highest_sequence, block.cumulative_lost, block.fraction_lost) == (65538, 0, 0)


def test_probation_across_the_wrap() -> None:
    stats = ReceptionStats(9)
    assert feed(stats, [65535, 0, 1]) == [False, True, True]
    # Counting starts at 0, the packet that ended the probation: no cycle yet.
    assert (stats.extended_highest, stats.received, stats.lost) == (1, 2, 0)


def test_a_reordered_packet_is_not_lost() -> None:
    stats = ReceptionStats(9)
    assert all(feed(stats, [1, 2, 3, 5, 4, 6])[1:])
    assert (stats.extended_highest, stats.received, stats.lost) == (6, 5, 0)


def test_a_lost_packet_is_counted() -> None:
    stats = ReceptionStats(9)
    feed(stats, [1, 2, 3, 5, 6])
    assert (stats.expected, stats.received, stats.lost) == (5, 4, 1)
    block = stats.report_block(0.0)
    assert block is not None
    assert block.cumulative_lost == 1
    assert block.fraction_lost == 256 // 5
    # The next interval has no loss: the fraction is per interval, the count is not.
    feed(stats, [7, 8, 9])
    block = stats.report_block(0.0)
    assert block is not None
    assert (block.fraction_lost, block.cumulative_lost) == (0, 1)


def test_duplicates_make_the_loss_negative() -> None:
    stats = ReceptionStats(9)
    feed(stats, [1, 2, 3, 3, 3])
    block = stats.report_block(0.0)
    assert block is not None
    assert (block.cumulative_lost, block.fraction_lost) == (-2, 0)


def test_a_big_jump_is_dropped_unless_the_stream_continues_from_there() -> None:
    stats = ReceptionStats(9)
    feed(stats, list(range(100, 111)))
    assert stats.received == 10
    # One stray packet far ahead is not counted and moves nothing.
    assert stats.receive(30_000, 0, 2000.0, 8000) is False
    assert stats.receive(111, 111 * 160, 2000.02, 8000) is True
    assert (stats.extended_highest, stats.received, stats.lost) == (111, 11, 0)
    # Two in sequence after the jump: the sender restarted, counting starts over.
    assert stats.receive(40_000, 0, 2001.0, 8000) is False
    assert stats.receive(40_001, 160, 2001.02, 8000) is True
    assert (stats.base_seq, stats.extended_highest, stats.received) == (40_001, 40_001, 1)


def test_old_packets_within_the_misorder_window_count_as_duplicates() -> None:
    stats = ReceptionStats(9)
    feed(stats, list(range(1000, 1010)))
    assert stats.receive(950, 950 * 160, 2000.0, 8000) is True
    assert stats.extended_highest == 1009


def test_jitter_of_a_constant_transit_is_zero() -> None:
    stats = ReceptionStats(9)
    feed(stats, list(range(500)))
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)
    block = stats.report_block(0.0)
    assert block is not None and block.jitter == 0


def test_jitter_converges_to_the_mean_transit_difference() -> None:
    # Transit alternating +20 ms and -20 ms around its mean: every |D| is 40 ms, which
    # A.8's J += (|D| - J) / 16 approaches as 40 ms * (1 - (15/16)^n).
    stats = ReceptionStats(9)
    n = 300
    for i in range(n):
        offset = 0.020 if i % 2 else -0.020
        stats.receive(i, i * 160, 1000.0 + i * 0.020 + offset, 8000)
    assert stats.jitter == pytest.approx(320 * (1 - (15 / 16) ** (n - 1)), rel=1e-9)
    assert stats.jitter_seconds == pytest.approx(0.040, abs=1e-6)
    block = stats.report_block(0.0)
    assert block is not None
    assert block.jitter in (319, 320)
    assert block.jitter_seconds(8000) == pytest.approx(0.040, abs=2 / 8000)


def test_jitter_across_the_timestamp_wrap() -> None:
    stats = ReceptionStats(9)
    start = (1 << 32) - 160 * 50
    for i in range(100):
        stats.receive(i, start + i * 160, 1000.0 + i * 0.020, 8000)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


def test_jitter_in_the_units_of_another_clock() -> None:
    stats = ReceptionStats(9)
    for i in range(100):
        stats.receive(i, i * 960, 1000.0 + i * 0.020 + (0.005 if i % 2 else 0.0), 48000)
    assert stats.jitter_seconds == pytest.approx(0.005, rel=0.01)
    block = stats.report_block(0.0)
    assert block is not None
    assert block.jitter_seconds(48000) == pytest.approx(0.005, rel=0.01)


def test_report_block_carries_lsr_and_dlsr_of_the_last_sr() -> None:
    stats = ReceptionStats(0x55)
    feed(stats, [1, 2, 3])
    block = stats.report_block(10.0)
    assert block is not None and (block.last_sr, block.delay_since_last_sr) == (0, 0)
    sr = SenderReport(0x55, ntp_timestamp(1_700_000_000.5), 0, 0, 0)
    stats.sender_report(sr, 20.0)
    block = stats.report_block(21.5)
    assert block is not None
    assert block.last_sr == (sr.ntp_timestamp >> 16) & 0xFFFFFFFF
    assert block.delay_since_last_sr == 3 * 32768
    assert block.ssrc == 0x55


# Reports about the streams the server sends (rtcp_sender.py)


class Clock:
    """The monotonic time the tests give a reporter; its wall clock reads 1000 s more."""

    def __init__(self) -> None:
        self.now = 0.0

    def wall(self) -> float:
        return 1000.0 + self.now


def reporter(
    clock: Clock, interval: float = 5.0, uniform: float = 0.5, clock_rate: int = 8000
) -> RtcpReporter:
    """A reporter whose interval is not random."""
    return RtcpReporter(
        0xFEED,
        clock_rate,
        cname="nuage@192.0.2.1",
        interval=interval,
        uniform=lambda: uniform,
        wall_clock=clock.wall,
    )


def send_frames(
    stream: RtcpReporter, clock: Clock, first: int, count: int, start: float
) -> list[bytes]:
    """``count`` packets of 160 octets, one per 20 ms from ``start``, timestamps from
    ``first``; returns the reports they brought."""
    reports = []
    for index in range(count):
        clock.now = start + index * 0.02
        report = stream.sent((first + index * 160) & 0xFFFFFFFF, 160, clock.now)
        if report is not None:
            reports.append(report)
    return reports


def test_report_interval_is_the_minimum_spread_by_half_either_way() -> None:
    assert report_interval(5.0, 0.5) == 5.0
    assert report_interval(5.0, 0.0) == 2.5
    assert report_interval(5.0, 0.999) == pytest.approx(7.495)
    # The first report comes after half the minimum (RFC 3550 6.2).
    assert report_interval(5.0, 0.0, initial=True) == 1.25
    assert report_interval(5.0, 0.5, initial=True) == 2.5


def test_reporter_sends_sr_and_cname_at_the_interval() -> None:
    clock = Clock()
    stream = reporter(clock)
    # The first packet schedules the first report 2.5 s later, then every 5 s.
    reports = send_frames(stream, clock, 0x1000, 1000, 10.0)
    assert stream.due == pytest.approx(27.5 + 5.0)
    assert len(reports) == 4
    first = parse_compound(reports[0])
    assert first == [
        SenderReport(0xFEED, ntp_timestamp(1012.5), 0x1000 + 125 * 160, 126, 126 * 160),
        SourceDescription.cname(0xFEED, "nuage@192.0.2.1"),
    ]
    ntps = []
    for data in reports:
        sr = parse_compound(data)[0]
        assert isinstance(sr, SenderReport)
        ntps.append((ntp_to_unix(sr.ntp_timestamp), sr.rtp_timestamp))
    assert [round(t - 1000.0, 2) for t, _ in ntps] == [12.5, 17.5, 22.5, 27.5]
    # Every pair maps 5 s of wall time to 5 s of the 8 kHz RTP clock.
    for (t0, r0), (t1, r1) in itertools.pairwise(ntps):
        assert (r1 - r0) / 8000 == pytest.approx(t1 - t0, abs=1e-6)


def test_reporter_extrapolates_the_rtp_timestamp_to_the_report_time() -> None:
    clock = Clock()
    stream = reporter(clock, clock_rate=48000)
    assert stream.sent(0xFFFFFF00, 100, 1.0) is None  # the first packet schedules
    clock.now = 5.0
    sr = parse_compound(stream.report(5.0))[0]
    # 4 s of a 48 kHz clock later, across the 32-bit wrap.
    assert sr == SenderReport(0xFEED, ntp_timestamp(1005.0), (0xFFFFFF00 + 192_000) % 2**32, 1, 100)


def test_reporter_interval_is_randomised_by_the_injected_source() -> None:
    values = iter([0.0, 0.999, 0.25])
    stream = RtcpReporter(1, 8000, interval=1.0, uniform=lambda: next(values))
    assert stream.sent(0, 160, 0.0) is None
    assert stream.due == 0.25
    assert stream.poll(0.24) is None
    assert stream.poll(0.25) is not None
    assert stream.due == pytest.approx(0.25 + 1.499)
    stream.report(2.0)
    assert stream.due == 2.75


def test_reporter_sends_an_rr_once_nothing_was_sent_for_two_intervals() -> None:
    clock = Clock()
    stream = reporter(clock)
    send_frames(stream, clock, 0, 200, 0.0)  # the first report at 2.5 s
    assert isinstance(parse_compound(stream.report(6.0))[0], SenderReport)
    assert isinstance(parse_compound(stream.report(11.0))[0], SenderReport)
    assert parse_compound(stream.report(16.0))[0] == ReceiverReport(0xFEED)


def test_bye_ends_the_stream_with_a_last_report_and_the_cname() -> None:
    clock = Clock()
    stream = reporter(clock)
    assert stream.bye(0.0) is None  # nothing sent: no BYE (RFC 3550 6.3.7)
    send_frames(stream, clock, 0, 10, 0.0)
    clock.now = 0.2
    packets = parse_compound(stream.bye(0.2) or b"")
    assert packets == [
        SenderReport(0xFEED, ntp_timestamp(1000.2), 10 * 160, 10, 1600),
        SourceDescription.cname(0xFEED, "nuage@192.0.2.1"),
        Bye((0xFEED,)),
    ]
    assert stream.due == math.inf and stream.poll(1e9) is None
    assert stream.bye(0.3) is None  # once


@pytest.mark.parametrize(
    "arguments", [{"clock_rate": 0}, {"interval": 0.0}, {"cname": ""}, {"cname": "x" * 256}]
)
def test_reporter_refuses_impossible_settings(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RtcpReporter(1, **{"clock_rate": 8000, **arguments})


def test_report_settings_make_reporters_with_the_server_cname() -> None:
    settings = ReportSettings(cname="nuage@198.51.100.1", interval=0.5, uniform=lambda: 0.5)
    stream = settings.reporter(7, 16000)
    assert (stream.ssrc, stream.clock_rate, stream.cname, stream.interval) == (
        7,
        16000,
        "nuage@198.51.100.1",
        0.5,
    )
    assert ReportSettings().reporter(7, 8000).cname == "nuage"
