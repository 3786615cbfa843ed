"""Call quality per leg of a relayed call, from the RTCP the phones send through the relay.

The relay forwards RTP without reading it (a packet every 20 ms each way is too many to
parse), but RTCP is rare, about one compound packet every 5 s each way, and the report
blocks in it already hold what the E-model needs (see quality.py). This module reads
them; it is sans-I/O: the relay hands it datagrams and their arrival times.

What the figures mean. The report blocks in the RTCP from the phone of leg A describe
the stream that phone receives: the one party B sends, which crosses B's leg, the relay
and A's leg. Their loss and jitter are therefore what party A *hears*, end to end, not
the loss of A's leg alone; telling the two legs' losses apart would need the relay to
count RTP itself. The round trip, on the other hand, is A's leg alone (below), and
``call_quality`` adds the two legs' round trips for the end-to-end delay.

The round trip of a leg. RFC 3550's RTT (arrival - LSR - DLSR) needs a report about an
SR *we* sent, and the relay sends none: the SRs phone A hears are B's, forwarded. But
the relay sees each of B's SRs go by, so ``on_forwarded_sr`` records, per SSRC, the
SR's compact NTP timestamp (the value A will echo as LSR) and when it passed through
us. When a report block from A echoes that LSR:

    arrival of A's report - arrival of B's SR at us = relay -> A + DLSR + A -> relay

so ``arrival - recorded arrival - DLSR`` is the round trip between the relay and phone
A, plus the few microseconds the relay takes to forward. Every time in it is read on
the relay's clock, and B's NTP timestamp is only used as a key: no clock has to agree
with another, and any clock will do for ``arrival`` (say ``loop.time()``) as long as
both methods get the same one. The latest ``SR_HISTORY`` SRs of each source are kept,
for ``MAX_SOURCES`` sources.

Which report block. A phone can report on several sources at once: the party's old and
new SSRC after a re-INVITE, the relay's own stream (music on hold) next to the party's
stalled one. A block whose extended highest sequence number has not moved since the
phone's previous report about that source describes a stream that is no longer received;
such blocks are passed over, and so are blocks covering fewer than
``MIN_INTERVAL_PACKETS`` packets since the previous one (a stream that stopped just
after a report: one lost packet among three would read as 33 % loss). Among the streams
still received, the one with the largest fraction lost is used (then the largest
jitter): the worst of what the party hears, never hidden by a quiet source. When every
block is about a stalled stream (the party is on hold, or silent without comfort noise)
the report makes no sample: no audio came, so there is no quality to rate, and an hour
on hold must not lift the call's average. The round trip is taken from any block of the
report whose LSR matches a recorded SR, the chosen one first; without one, the leg's
last measured round trip stands.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from typing import TypeVar

from nuage.media import quality
from nuage.media.quality import G711, Cause, QualitySample, QualityTracker
from nuage.media.rtcp import (
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    compact_ntp,
    parse_compound,
)

SR_HISTORY = 16
"""The SRs remembered per source: 80 s of reports at the usual 5 s interval, room for a
phone that echoes an older SR than the latest (its report crossed a newer SR)."""

MIN_INTERVAL_PACKETS = 10
"""A report interval shorter than this (in packets expected) makes no sample."""

MAX_SOURCES = 8
"""The sources (SSRCs) remembered per leg, for the SR history and the stalled-stream
check; the one heard of least recently is forgotten first."""

MAX_RTT = 10.0
"""A round trip longer than this many seconds is a phone's wrong DLSR, not a network."""

RTT_SLACK = 0.001
"""A round trip this far below zero (seconds) is a phone's clock rounding its DLSR and
counts as zero; further below, the DLSR is wrong and nothing is measured."""

_DLSR_UNIT = 65536

_K = TypeVar("_K")
_V = TypeVar("_V")


def _report_blocks(packets: Iterable[RtcpPacket]) -> list[ReportBlock]:
    blocks: list[ReportBlock] = []
    for packet in packets:
        if isinstance(packet, SenderReport | ReceiverReport):
            blocks.extend(packet.reports)
    return blocks


def _parse(data: bytes) -> list[RtcpPacket] | None:
    try:
        return parse_compound(data)
    except (ValueError, struct.error, IndexError):
        # RtcpError is a ValueError; the others are defence against a parser slip on
        # bytes from the network, which must never reach the relay's receive path.
        return None


def _remember(table: dict[_K, _V], key: _K, value: _V, limit: int) -> None:
    """Set ``table[key]`` as the most recent entry, forgetting the oldest past ``limit``."""
    table.pop(key, None)
    table[key] = value
    while len(table) > limit:
        del table[next(iter(table))]


class LegQuality:
    """The quality one leg's party hears, from the RTCP its phone sends (``on_rtcp``) and
    the SRs the other party's phone sends it through the relay (``on_forwarded_sr``).

    ``clock_rate`` is the RTP clock of the stream the phone receives (the unit of the
    jitter it reports: 8000 for G.711 and G.722, 48000 for Opus) and ``codec`` its E-model
    figures. Neither method raises on any datagram: what does not parse is counted in
    ``malformed`` (from the phone) or ``forwarded_malformed`` (from the other side).
    """

    __slots__ = (
        "_current",
        "_highest",
        "_rtt",
        "_sent",
        "_tracker",
        "clock_rate",
        "codec",
        "forwarded_malformed",
        "idle",
        "malformed",
        "reports",
    )

    def __init__(self, clock_rate: int = 8000, codec: quality.Codec = G711) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, not {clock_rate}")
        self.clock_rate = clock_rate
        self.codec = codec
        self._tracker = QualityTracker(codec)
        self.reports = 0
        """Reports from the phone that made a sample."""
        self.idle = 0
        """Reports from the phone about stalled streams only (no sample; module doc)."""
        self.malformed = 0
        """Datagrams from the phone that are not RTCP this server can read."""
        self.forwarded_malformed = 0
        """Datagrams given to ``on_forwarded_sr`` that are not readable RTCP."""
        self._current: QualitySample | None = None
        self._rtt: float | None = None
        # Per source the other side's phone sends: compact NTP of its SR -> our arrival.
        self._sent: dict[int, dict[int, float]] = {}
        # Per source this phone reports on: the extended highest sequence last reported.
        self._highest: dict[int, int] = {}

    def set_codec(self, codec: quality.Codec, clock_rate: int) -> None:
        """The stream the phone receives changed codec (a re-INVITE): later reports are
        read at ``clock_rate`` and scored for ``codec``; earlier samples keep their MOS."""
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, not {clock_rate}")
        self.clock_rate = clock_rate
        self.codec = codec
        self._tracker.codec = codec

    def on_rtcp(self, data: bytes, arrival: float) -> QualitySample | None:
        """Read a datagram this leg's phone sent to the relay's RTCP socket, received at
        ``arrival``: the new sample, or None when the datagram is malformed, has no
        report block (an SDES or feedback alone) or reports on stalled streams only."""
        packets = _parse(data)
        if packets is None:
            self.malformed += 1
            return None
        return self._reports(packets, arrival)

    def on_forwarded_sr(self, data: bytes, arrival: float) -> None:
        """Note the SRs in a datagram from the other side's phone, received by the relay at
        ``arrival`` and about to be forwarded to this leg's phone (module doc). Other
        packets in it are ignored."""
        packets = _parse(data)
        if packets is None:
            self.forwarded_malformed += 1
            return
        self._forwarded(packets, arrival)

    def _forwarded(self, packets: Iterable[RtcpPacket], arrival: float) -> None:
        for packet in packets:
            if not isinstance(packet, SenderReport):
                continue
            key = compact_ntp(packet.ntp_timestamp)
            if key == 0:
                continue  # An LSR of 0 means "no SR heard": it can match nothing.
            history = self._sent.pop(packet.ssrc, None)
            if history is None:
                history = {}
            _remember(history, key, arrival, SR_HISTORY)
            _remember(self._sent, packet.ssrc, history, MAX_SOURCES)

    def _reports(self, packets: Iterable[RtcpPacket], arrival: float) -> QualitySample | None:
        blocks = _report_blocks(packets)
        if not blocks:
            return None
        live = []
        for block in blocks:
            previous = self._highest.get(block.ssrc)
            if previous is None or (
                (block.highest_sequence - previous) % 2**32 >= MIN_INTERVAL_PACKETS
            ):
                live.append(block)
            _remember(self._highest, block.ssrc, block.highest_sequence, MAX_SOURCES)
        if not live:
            self.idle += 1
            return None
        chosen = max(live, key=lambda block: (block.fraction_lost, block.jitter))
        for block in (chosen, *blocks):
            rtt = self._round_trip(block, arrival)
            if rtt is not None:
                self._rtt = rtt
                break
        sample = self._tracker.add(
            chosen.loss_percent,
            chosen.jitter * 1000 / self.clock_rate,
            None if self._rtt is None else self._rtt * 1000,
        )
        self.reports += 1
        self._current = sample
        return sample

    def _round_trip(self, block: ReportBlock, arrival: float) -> float | None:
        """The round trip in seconds from a block echoing a recorded SR (module doc)."""
        # A DLSR of exactly 0 with an LSR is a phone that leaves the field unset: no
        # report leaves within 1/65536 s of the SR it answers.
        if block.last_sr == 0 or block.delay_since_last_sr == 0:
            return None
        passed = self._sent.get(block.ssrc, {}).get(block.last_sr)
        if passed is None:
            return None
        rtt = arrival - passed - block.delay_since_last_sr / _DLSR_UNIT
        if not math.isfinite(rtt) or rtt > MAX_RTT or rtt < -RTT_SLACK:
            return None
        return max(0.0, rtt)

    @property
    def rtt_ms(self) -> float | None:
        """The last round trip measured between the relay and this leg's phone, in ms."""
        return None if self._rtt is None else self._rtt * 1000

    def current(self) -> QualitySample | None:
        """The latest sample; None before the first."""
        return self._current

    def average(self) -> QualitySample | None:
        """The mean of the samples (see ``QualityTracker.average``)."""
        return self._tracker.average()

    def worst(self) -> QualitySample | None:
        """The sample with the lowest MOS."""
        return self._tracker.worst

    def main_cause(self) -> Cause | None:
        """What lowers the current sample's score most, if it is poor (``quality.main_cause``)."""
        if self._current is None:
            return None
        return quality.main_cause(self._current, self.codec)


def _heard(leg: LegQuality, other: LegQuality) -> QualitySample | None:
    """What ``leg``'s party hears, end to end: its phone's loss and jitter with the round
    trip of both legs (one alone when the other is not measured)."""
    sample = leg.current()
    if sample is None:
        return None
    rtts = [rtt for rtt in (sample.rtt_ms, other.rtt_ms) if rtt is not None]
    rtt = sum(rtts) if rtts else None
    return QualitySample.measure(sample.loss_percent, sample.jitter_ms, rtt, leg.codec)


def _worse(a: LegQuality, b: LegQuality) -> tuple[QualitySample, quality.Codec] | None:
    """The worse of what the two parties hear, with the codec it was scored for."""
    worse: tuple[QualitySample, quality.Codec] | None = None
    for leg, other in ((a, b), (b, a)):
        sample = _heard(leg, other)
        if sample is not None and (worse is None or sample.mos < worse[0].mos):
            worse = (sample, leg.codec)
    return worse


def call_quality(a: LegQuality, b: LegQuality) -> QualitySample | None:
    """The quality of a two-party call: the worse of what its two parties hear now, each
    rescored with the end-to-end round trip (the sum of the legs'; a lower bound while
    only one leg's is measured). None until either phone has reported."""
    worse = _worse(a, b)
    return None if worse is None else worse[0]


class CallQuality:
    """The two legs of a relayed two-party call, fed from the relay's two RTCP sockets:
    each datagram is parsed once, read as a report by its sender's leg and as forwarded
    SRs by the other leg. The call's own tracker records, at every new report, what that
    report's party hears end to end, for the call record's average and worst."""

    __slots__ = ("_tracker", "a", "b")

    def __init__(self, a: LegQuality, b: LegQuality) -> None:
        self.a = a
        self.b = b
        self._tracker = QualityTracker(a.codec)

    def from_a(self, data: bytes, arrival: float) -> QualitySample | None:
        """A datagram side A's phone sent to the relay's RTCP socket; the new end-to-end
        sample of what party A hears, or None (see ``LegQuality.on_rtcp``)."""
        return self._received(self.a, self.b, data, arrival)

    def from_b(self, data: bytes, arrival: float) -> QualitySample | None:
        """As ``from_a``, for side B."""
        return self._received(self.b, self.a, data, arrival)

    def _received(
        self, leg: LegQuality, other: LegQuality, data: bytes, arrival: float
    ) -> QualitySample | None:
        packets = _parse(data)
        if packets is None:
            leg.malformed += 1
            return None
        other._forwarded(packets, arrival)
        if leg._reports(packets, arrival) is None:
            return None
        sample = _heard(leg, other)
        if sample is not None:
            self._tracker.record(sample)
        return sample

    def current(self) -> QualitySample | None:
        """The call's quality now: ``call_quality`` of its legs."""
        return call_quality(self.a, self.b)

    def average(self) -> QualitySample | None:
        """The mean of the end-to-end samples of both directions."""
        return self._tracker.average()

    def worst(self) -> QualitySample | None:
        """The end-to-end sample with the lowest MOS, either direction."""
        return self._tracker.worst

    def main_cause(self) -> Cause | None:
        """What lowers the call's current score most, if it is poor: judged for the
        direction that scores worse, with its codec."""
        worse = _worse(self.a, self.b)
        return None if worse is None else quality.main_cause(*worse)
