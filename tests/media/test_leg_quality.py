"""Per-leg call quality from the RTCP relayed between the phones."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuage.media.leg_quality import (
    MAX_SOURCES,
    SR_HISTORY,
    CallQuality,
    LegQuality,
    call_quality,
)
from nuage.media.quality import G711, G711_WITHOUT_PLC, OPUS, QualitySample, mos
from nuage.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    SenderReport,
    SourceDescription,
    compact_ntp,
    compound,
    ntp_timestamp,
    parse_compound,
)

PHONE_A = 0xA0A0A0A0
PHONE_B = 0xB0B0B0B0
# The phones' NTP clocks need not agree with the relay's: only the relay's arrival times
# are subtracted, the NTP timestamps are keys.
B_CLOCK = 1_700_000_000.0
FIVE_PERCENT = 13  # 13/256 = 5.08 %
U32 = st.integers(0, 0xFFFFFFFF)


def block(
    ssrc: int = PHONE_B,
    *,
    fraction: int = 0,
    jitter: int = 0,
    highest: int = 1000,
    lsr: int = 0,
    dlsr: int = 0,
) -> ReportBlock:
    return ReportBlock(ssrc, fraction, 0, highest, jitter, lsr, dlsr)


def rr(*blocks: ReportBlock, ssrc: int = PHONE_A) -> bytes:
    return compound(ReceiverReport(ssrc, blocks), SourceDescription.cname(ssrc, "a@192.0.2.1"))


def sr(ssrc: int, ntp_time: float, *blocks: ReportBlock) -> bytes:
    report = SenderReport(ssrc, ntp_timestamp(ntp_time), 0, 100, 16_000, blocks)
    return compound(report, SourceDescription.cname(ssrc, "b@192.0.2.2"))


def dlsr(seconds: float) -> int:
    return round(seconds * 65536)


def test_loss_and_jitter_of_the_phones_report() -> None:
    lossy, clean = LegQuality(), LegQuality()
    bad = lossy.on_rtcp(rr(block(fraction=FIVE_PERCENT, jitter=240)), 10.0)
    good = clean.on_rtcp(rr(block(fraction=0, jitter=8)), 10.0)
    assert bad is not None and good is not None
    assert bad.loss_percent == pytest.approx(5, abs=0.1)
    assert bad.jitter_ms == pytest.approx(30)
    assert bad.rtt_ms is None
    assert bad.mos == pytest.approx(mos(FIVE_PERCENT * 100 / 256, 30, None))
    assert good.mos > 4.3
    assert good.mos - bad.mos > 0.4
    assert lossy.current() == bad and lossy.reports == 1 and lossy.malformed == 0


def test_jitter_is_read_at_the_streams_clock_rate() -> None:
    leg = LegQuality(48_000, OPUS)
    sample = leg.on_rtcp(rr(block(jitter=1440)), 10.0)
    assert sample is not None and sample.jitter_ms == pytest.approx(30)


def test_codec_scores_the_loss() -> None:
    leg = LegQuality(codec=G711_WITHOUT_PLC)
    sample = leg.on_rtcp(rr(block(fraction=FIVE_PERCENT)), 10.0)
    assert sample is not None
    assert sample.mos == pytest.approx(mos(FIVE_PERCENT * 100 / 256, 0, None, G711_WITHOUT_PLC))
    leg.set_codec(G711, 8000)
    later = leg.on_rtcp(rr(block(fraction=FIVE_PERCENT, highest=2000)), 15.0)
    assert later is not None and later.mos > sample.mos


def test_clock_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="clock rate"):
        LegQuality(0)
    with pytest.raises(ValueError, match="clock rate"):
        LegQuality().set_codec(G711, -1)


def test_sender_report_from_the_phone_carries_blocks_too() -> None:
    leg = LegQuality()
    sample = leg.on_rtcp(sr(PHONE_A, 5.0, block(fraction=FIVE_PERCENT, jitter=80)), 10.0)
    assert sample is not None
    assert sample.loss_percent == pytest.approx(5, abs=0.1)
    assert sample.jitter_ms == pytest.approx(10)


def test_datagram_without_report_blocks_makes_no_sample() -> None:
    leg = LegQuality()
    assert leg.on_rtcp(rr(), 10.0) is None
    assert leg.on_rtcp(SourceDescription.cname(PHONE_A, "a").to_bytes(), 10.0) is None
    assert leg.on_rtcp(Bye((PHONE_A,)).to_bytes(), 10.0) is None
    assert leg.current() is None and leg.reports == 0 and leg.malformed == 0
    assert leg.average() is None and leg.worst() is None and leg.main_cause() is None


# The round trip


def test_round_trip_from_a_forwarded_sender_report() -> None:
    leg = LegQuality()
    # B's SR passes through the relay at 1000.0 (relay clock); phone A receives it 40 ms
    # later, holds it 2.42 s, and its RR takes 40 ms back: arrives at 1002.5.
    leg.on_forwarded_sr(sr(PHONE_B, B_CLOCK), 1000.0)
    lsr = compact_ntp(ntp_timestamp(B_CLOCK))
    sample = leg.on_rtcp(rr(block(lsr=lsr, dlsr=dlsr(2.42))), 1002.5)
    assert sample is not None and sample.rtt_ms is not None
    assert sample.rtt_ms == pytest.approx(80, abs=1)
    assert leg.rtt_ms == sample.rtt_ms
    assert sample.mos == pytest.approx(mos(0, 0, sample.rtt_ms))


def test_round_trip_matches_an_older_recorded_sender_report() -> None:
    leg = LegQuality()
    for i in range(4):
        leg.on_forwarded_sr(sr(PHONE_B, B_CLOCK + 5 * i), 1000.0 + 5 * i)
    # The RR crossed the last SR: it echoes the one before.
    lsr = compact_ntp(ntp_timestamp(B_CLOCK + 10))
    sample = leg.on_rtcp(rr(block(lsr=lsr, dlsr=dlsr(4.7))), 1014.9)
    assert sample is not None and sample.rtt_ms == pytest.approx(200, abs=1)


def test_round_trip_needs_the_sources_own_sender_report() -> None:
    leg = LegQuality()
    leg.on_forwarded_sr(sr(PHONE_B, B_CLOCK), 1000.0)
    lsr = compact_ntp(ntp_timestamp(B_CLOCK))
    # The same LSR about another source, an LSR never seen, and no LSR at all.
    for reported in (
        block(ssrc=0x1234, lsr=lsr, dlsr=dlsr(1)),
        block(lsr=lsr + 1, dlsr=dlsr(1)),
        block(highest=2000),
    ):
        sample = leg.on_rtcp(rr(reported), 1001.1)
        assert sample is not None and sample.rtt_ms is None


def test_unusable_dlsr_measures_nothing() -> None:
    leg = LegQuality()
    leg.on_forwarded_sr(sr(PHONE_B, B_CLOCK), 1000.0)
    lsr = compact_ntp(ntp_timestamp(B_CLOCK))
    cases = [
        (0, 1001.0),  # DLSR left at 0
        (dlsr(1.5), 1001.0),  # DLSR longer than the time since the SR passed
        (dlsr(0.01), 1020.0),  # 20 s: not a network
    ]
    for index, (delay, arrival) in enumerate(cases, start=1):
        sample = leg.on_rtcp(rr(block(lsr=lsr, dlsr=delay, highest=250 * index)), arrival)
        assert sample is not None and sample.rtt_ms is None


def test_round_trip_rounding_below_zero_is_zero() -> None:
    leg = LegQuality()
    leg.on_forwarded_sr(sr(PHONE_B, B_CLOCK), 1000.0)
    lsr = compact_ntp(ntp_timestamp(B_CLOCK))
    sample = leg.on_rtcp(rr(block(lsr=lsr, dlsr=dlsr(1.0005))), 1001.0)
    assert sample is not None and sample.rtt_ms == 0.0


def test_last_round_trip_stands_until_measured_again() -> None:
    leg = LegQuality()
    leg.on_forwarded_sr(sr(PHONE_B, B_CLOCK), 1000.0)
    lsr = compact_ntp(ntp_timestamp(B_CLOCK))
    leg.on_rtcp(rr(block(lsr=lsr, dlsr=dlsr(1), highest=250)), 1001.1)
    later = leg.on_rtcp(rr(block(highest=500)), 1006.0)
    assert later is not None and later.rtt_ms == pytest.approx(100, abs=1)


def test_sender_report_memory_is_bounded() -> None:
    leg = LegQuality()
    for i in range(SR_HISTORY + 1):
        leg.on_forwarded_sr(sr(PHONE_B, B_CLOCK + 5 * i), 1000.0 + 5 * i)
    first = compact_ntp(ntp_timestamp(B_CLOCK))
    oldest_kept = compact_ntp(ntp_timestamp(B_CLOCK + 5))
    gone = leg.on_rtcp(rr(block(lsr=first, dlsr=dlsr(1), highest=250)), 1200.0)
    assert gone is not None and gone.rtt_ms is None
    kept = leg.on_rtcp(rr(block(lsr=oldest_kept, dlsr=dlsr(1), highest=500)), 1006.05)
    assert kept is not None and kept.rtt_ms == pytest.approx(50, abs=1)

    # Past MAX_SOURCES sources, the one heard of least recently is forgotten.
    leg = LegQuality()
    for source in range(MAX_SOURCES + 1):
        leg.on_forwarded_sr(sr(source + 1, B_CLOCK + source), 1000.0 + source)
    lsr_first = compact_ntp(ntp_timestamp(B_CLOCK))
    lsr_last = compact_ntp(ntp_timestamp(B_CLOCK + MAX_SOURCES))
    gone = leg.on_rtcp(rr(block(ssrc=1, lsr=lsr_first, dlsr=dlsr(1))), 1100.0)
    assert gone is not None and gone.rtt_ms is None
    last = block(ssrc=MAX_SOURCES + 1, lsr=lsr_last, dlsr=dlsr(1))
    kept = leg.on_rtcp(rr(last), 1000.0 + MAX_SOURCES + 1.03)
    assert kept is not None and kept.rtt_ms == pytest.approx(30, abs=1)


def test_forwarded_datagram_other_than_a_sender_report() -> None:
    leg = LegQuality()
    leg.on_forwarded_sr(rr(block(), ssrc=PHONE_B), 1000.0)
    leg.on_forwarded_sr(b"\x00garbage", 1000.0)
    assert leg.forwarded_malformed == 1
    assert leg.malformed == 0 and leg.reports == 0


# Several report blocks


def test_stalled_stream_is_passed_over() -> None:
    leg = LegQuality()
    old, new = 0x01D, 0x2E3
    leg.on_rtcp(rr(block(ssrc=old, fraction=40, jitter=400, highest=500)), 10.0)
    # The party's old SSRC, stalled with a bad last report, next to its new stream.
    sample = leg.on_rtcp(
        rr(block(ssrc=old, fraction=40, jitter=400, highest=500), block(ssrc=new, jitter=16)),
        15.0,
    )
    assert sample is not None
    assert sample.loss_percent == 0 and sample.jitter_ms == pytest.approx(2)


def test_the_worst_received_stream_is_used() -> None:
    leg = LegQuality()
    sample = leg.on_rtcp(
        rr(
            block(ssrc=1, fraction=3, jitter=500),
            block(ssrc=2, fraction=FIVE_PERCENT, jitter=40),
            block(ssrc=3, fraction=FIVE_PERCENT, jitter=80),
        ),
        10.0,
    )
    assert sample is not None
    assert sample.loss_percent == pytest.approx(FIVE_PERCENT * 100 / 256)
    assert sample.jitter_ms == pytest.approx(10)  # the larger jitter of the two at 5 %


def test_report_on_stalled_streams_only_makes_no_sample() -> None:
    leg = LegQuality()
    first = leg.on_rtcp(rr(block(fraction=2, jitter=40, highest=700)), 10.0)
    # On hold: nothing more arrives, the phone keeps reporting the same sequence number.
    assert leg.on_rtcp(rr(block(highest=700)), 15.0) is None
    assert leg.on_rtcp(rr(block(highest=700)), 20.0) is None
    assert leg.idle == 2 and leg.reports == 1
    assert leg.current() == first and leg.average() == first


def test_round_trip_from_another_block_than_the_one_scored() -> None:
    # Music on hold: the phone hears the relay's stream, and reports the party's stalled
    # stream with the LSR of the party's last SR and a growing DLSR.
    leg = LegQuality()
    leg.on_forwarded_sr(sr(PHONE_B, B_CLOCK), 1000.0)
    lsr = compact_ntp(ntp_timestamp(B_CLOCK))
    leg.on_rtcp(rr(block(highest=900, lsr=lsr, dlsr=dlsr(1))), 1001.06)
    music = block(ssrc=0x3C3C, fraction=1, jitter=24, highest=50)
    stalled = block(highest=900, lsr=lsr, dlsr=dlsr(30))
    sample = leg.on_rtcp(rr(music, stalled), 1030.09)
    assert sample is not None
    assert sample.jitter_ms == pytest.approx(3)
    assert sample.rtt_ms == pytest.approx(90, abs=1)


# Average, worst, cause


def test_average_worst_and_main_cause() -> None:
    leg = LegQuality()
    figures = [(0, 8), (FIVE_PERCENT, 240), (26, 1600), (2, 16)]
    samples = []
    for i, (fraction, jitter) in enumerate(figures):
        sample = leg.on_rtcp(rr(block(fraction=fraction, jitter=jitter, highest=250 * i)), 5.0 * i)
        assert sample is not None
        samples.append(sample)
    assert leg.reports == 4
    assert leg.worst() == samples[2]
    average = leg.average()
    assert average is not None
    assert average.loss_percent == pytest.approx(sum(s.loss_percent for s in samples) / 4)
    assert average.jitter_ms == pytest.approx((1 + 30 + 200 + 2) / 4)
    assert average.rtt_ms is None
    assert average.mos == pytest.approx(sum(s.mos for s in samples) / 4)
    assert leg.current() == samples[3] and leg.main_cause() is None
    leg.on_rtcp(rr(block(fraction=0, jitter=1600, highest=2250)), 30.0)
    assert leg.main_cause() == "jitter"
    leg.on_rtcp(rr(block(fraction=40, jitter=8, highest=2500)), 35.0)
    assert leg.main_cause() == "loss"


# Malformed datagrams


def test_malformed_datagrams_are_counted() -> None:
    leg = LegQuality()
    good = rr(block())
    for data in (b"", b"\x80", good[:-1], good + b"\x00", b"\x00" + good[1:]):
        assert leg.on_rtcp(data, 10.0) is None
    assert leg.malformed == 5 and leg.reports == 0


@given(st.binary(max_size=200), st.floats(-1e9, 1e9))
def test_garbage_never_raises(data: bytes, arrival: float) -> None:
    leg = LegQuality()
    try:
        parse_compound(data)
    except RtcpError:
        unreadable = True
    else:
        unreadable = False
    leg.on_forwarded_sr(data, arrival)
    sample = leg.on_rtcp(data, arrival)
    assert leg.malformed == leg.forwarded_malformed == int(unreadable)
    assert sample is None or 1 <= sample.mos <= 4.5


@given(
    st.lists(st.tuples(U32, st.integers(0, 255), U32, U32, U32, U32), max_size=4),
    st.lists(st.tuples(U32, st.integers(0, 0xFFFFFFFFFFFFFFFF)), max_size=4),
    st.floats(0, 1e6),
    st.sampled_from([8000, 16000, 48000]),
)
def test_any_well_formed_report_gives_a_sane_sample(
    fields: list[tuple[int, int, int, int, int, int]],
    senders: list[tuple[int, int]],
    arrival: float,
    clock_rate: int,
) -> None:
    leg = LegQuality(clock_rate)
    for ssrc, ntp in senders:
        leg.on_forwarded_sr(SenderReport(ssrc, ntp, 0, 0, 0).to_bytes(), arrival / 2)
    # Raw words: a header claiming the blocks, then the blocks, whatever their values.
    header = struct.pack("!BBHI", 0x80 | len(fields), 201, 1 + 6 * len(fields), PHONE_A)
    body = b"".join(
        struct.pack("!IIIIII", ssrc, fraction << 24, highest, jitter, lsr, delay)
        for ssrc, fraction, highest, jitter, lsr, delay in fields
    )
    sample = leg.on_rtcp(header + body, arrival)
    assert leg.malformed == 0
    assert (sample is None) == (not fields)
    if sample is not None:
        assert 1 <= sample.mos <= 4.5
        assert 0 <= sample.loss_percent < 100
        assert sample.rtt_ms is None or 0 <= sample.rtt_ms <= 10_000


# The whole call


def legs_with_round_trips(rtt_a: float, rtt_b: float) -> tuple[LegQuality, LegQuality]:
    """Two legs whose round trips (seconds) are measured, each phone reporting clean."""
    a, b = LegQuality(), LegQuality()
    a.on_forwarded_sr(sr(PHONE_B, B_CLOCK), 1000.0)
    b.on_forwarded_sr(sr(PHONE_A, B_CLOCK + 0.5), 1000.0)
    a_lsr = compact_ntp(ntp_timestamp(B_CLOCK))
    b_lsr = compact_ntp(ntp_timestamp(B_CLOCK + 0.5))
    a.on_rtcp(rr(block(lsr=a_lsr, dlsr=dlsr(1)), ssrc=PHONE_A), 1001.0 + rtt_a)
    b.on_rtcp(rr(block(ssrc=PHONE_A, lsr=b_lsr, dlsr=dlsr(1)), ssrc=PHONE_B), 1001.0 + rtt_b)
    return a, b


def test_call_quality_is_the_worse_direction_with_both_round_trips() -> None:
    assert call_quality(LegQuality(), LegQuality()) is None
    a, b = legs_with_round_trips(0.2, 0.3)
    whole = call_quality(a, b)
    assert whole is not None and whole.rtt_ms == pytest.approx(500, abs=2)
    assert whole.mos < min(s.mos for s in (a.current(), b.current()) if s is not None)
    b.on_rtcp(rr(block(ssrc=PHONE_A, fraction=FIVE_PERCENT, highest=2000), ssrc=PHONE_B), 1010.0)
    lossy = call_quality(a, b)
    assert lossy is not None
    assert lossy.loss_percent == pytest.approx(FIVE_PERCENT * 100 / 256)
    assert lossy.mos == pytest.approx(mos(FIVE_PERCENT * 100 / 256, 0, lossy.rtt_ms))
    assert lossy.rtt_ms == pytest.approx(500, abs=2)


def test_call_quality_with_one_leg_reported() -> None:
    a, b = LegQuality(), LegQuality()
    sample = a.on_rtcp(rr(block(fraction=FIVE_PERCENT, jitter=80)), 10.0)
    assert call_quality(a, b) == sample
    assert call_quality(b, a) == sample


def test_call_quality_fed_from_both_sockets() -> None:
    call = CallQuality(LegQuality(), LegQuality())
    assert call.current() is None and call.main_cause() is None
    # Each phone's SR is a report on what it hears and, for the other leg, an SR to echo.
    assert call.from_a(sr(PHONE_A, 500.0), 1000.0) is None  # no blocks yet
    assert call.from_b(sr(PHONE_B, 700.0), 1000.2) is None
    a_lsr = compact_ntp(ntp_timestamp(500.0))
    b_lsr = compact_ntp(ntp_timestamp(700.0))
    # A echoes B's SR (A's round trip 60 ms), B echoes A's (B's 140 ms).
    heard_by_a = call.from_a(sr(PHONE_A, 505.0, block(lsr=b_lsr, dlsr=dlsr(4.74))), 1005.0)
    heard_by_b = call.from_b(
        sr(PHONE_B, 705.0, block(ssrc=PHONE_A, fraction=FIVE_PERCENT, lsr=a_lsr, dlsr=dlsr(4.86))),
        1005.0,
    )
    assert heard_by_a is not None and heard_by_b is not None
    assert call.a.rtt_ms == pytest.approx(60, abs=1)
    assert call.b.rtt_ms == pytest.approx(140, abs=1)
    # A reported when B's round trip was not known yet; B's report has both.
    assert heard_by_a.rtt_ms == pytest.approx(60, abs=1)
    assert heard_by_b.rtt_ms == pytest.approx(200, abs=2)
    assert call.current() == call_quality(call.a, call.b)
    current = call.current()
    assert current is not None and current.loss_percent > 0
    assert call.worst() == heard_by_b
    average = call.average()
    assert average is not None
    assert average.mos == pytest.approx((heard_by_a.mos + heard_by_b.mos) / 2)
    assert call.from_a(b"junk", 1006.0) is None
    assert call.a.malformed == 1 and call.b.forwarded_malformed == 0


def test_call_main_cause_is_the_worse_directions() -> None:
    call = CallQuality(LegQuality(), LegQuality())
    call.from_a(rr(block(fraction=0, jitter=1600)), 10.0)
    assert call.main_cause() == "jitter"
    call.from_b(rr(block(ssrc=PHONE_A, fraction=50), ssrc=PHONE_B), 10.0)
    assert call.main_cause() == "loss"


def test_clean_call_is_scored_for_the_end_to_end_round_trip() -> None:
    a, b = legs_with_round_trips(0.05, 0.05)
    whole = call_quality(a, b)
    assert isinstance(whole, QualitySample)
    assert whole.rtt_ms == pytest.approx(100, abs=2)
    assert whole.mos == pytest.approx(mos(0, 0, whole.rtt_ms))


def test_a_report_on_a_few_packets_makes_no_sample() -> None:
    """A stream that stopped just after a report: the next one covers three packets, one
    lost, and would read as 33 % loss."""
    leg = LegQuality()
    assert leg.on_rtcp(rr(block(fraction=0, highest=1000)), 5.0) is not None
    assert leg.on_rtcp(rr(block(fraction=85, highest=1003)), 10.0) is None
    assert leg.current() is not None and leg.current().loss_percent == 0  # type: ignore[union-attr]
    assert leg.on_rtcp(rr(block(fraction=3, highest=1253)), 15.0) is not None
