"""RTCP (RFC 3550 section 6) for the reports the server makes and reads itself: compound
packets parsed and built, the reception statistics of one received RTP stream (RFC 3550
Appendix A) and the round trip time read from a report about a stream the server sends.
Relayed RTCP is never parsed (see relay.py).

Sans-I/O: times are Unix seconds passed in by the caller; nothing here reads a clock.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

SR = 200
RR = 201
SDES = 202
BYE = 203
CNAME = 1
"""The SDES item type of the canonical name, the one item every compound packet carries."""

MAX_REPORT_BLOCKS = 31
"""The report count is five bits (RFC 3550 6.4.1); more sources need a further RR."""

NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01)."""

MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
"""RFC 3550 A.1: a forward jump larger than ``MAX_DROPOUT`` or a backward one larger than
``MAX_MISORDER`` is not this stream; ``MIN_SEQUENTIAL`` in-order packets validate a new
source."""

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IIIIII")
_SSRC = struct.Struct("!I")
_VERSION_BITS = 0x80
_PADDING = 0x20
_SEQ_MOD = 1 << 16
_HALF_TS = 1 << 31
# A result this far below zero (about 1 ms, in 1/65536 s) is rounding: each of the
# three compact NTP times in the RTT formula is truncated.
_RTT_SLACK = 66


class RtcpError(ValueError):
    """Bytes that are not an RTCP packet this server can read."""


def _pack(layout: struct.Struct, *values: int) -> bytes:
    try:
        return layout.pack(*values)
    except struct.error as error:
        raise ValueError(f"RTCP field out of range: {error}") from None


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    # The length field counts 32-bit words minus one: the body's words, as the header
    # is one word.
    return _HEADER.pack(_VERSION_BITS | count, packet_type, len(body) // 4) + body


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """What a receiver says about one source it hears (RFC 3550 6.4.1).

    ``fraction_lost`` is the share lost since the previous report in 1/256;
    ``cumulative_lost`` is signed (duplicates can make it negative); ``highest_sequence``
    is extended with the wrap-around count in its upper 16 bits; ``jitter`` is in RTP
    timestamp units; ``last_sr`` is the middle 32 bits of the NTP time of the last SR
    heard from the source (0: none yet) and ``delay_since_last_sr`` the time since, in
    1/65536 s."""

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int = 0
    delay_since_last_sr: int = 0

    @property
    def loss_percent(self) -> float:
        """The share lost over the interval this block covers, in percent."""
        return self.fraction_lost * 100 / 256

    def jitter_seconds(self, clock_rate: int) -> float:
        return self.jitter / clock_rate

    def to_bytes(self) -> bytes:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError(f"fraction lost {self.fraction_lost} is not 8 bits")
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise ValueError(f"cumulative lost {self.cumulative_lost} is not 24 bits")
        return _pack(
            _BLOCK,
            self.ssrc,
            self.fraction_lost << 24 | self.cumulative_lost & 0xFFFFFF,
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )

    @classmethod
    def _unpack(cls, body: bytes, offset: int) -> ReportBlock:
        ssrc, loss, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, offset)
        lost = loss & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, loss >> 24, lost, highest, jitter, lsr, dlsr)


def _blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    if len(body) < offset + count * _BLOCK.size:
        raise RtcpError("report blocks beyond the packet")
    return tuple(ReportBlock._unpack(body, offset + i * _BLOCK.size) for i in range(count))


def _blocks_bytes(reports: tuple[ReportBlock, ...]) -> bytes:
    if len(reports) > MAX_REPORT_BLOCKS:
        raise ValueError(f"{len(reports)} report blocks, at most {MAX_REPORT_BLOCKS} fit")
    return b"".join(block.to_bytes() for block in reports)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """An SR: sent by a participant that sent RTP since its previous report. The NTP
    timestamp is the full 64-bit fixed point value (see ``ntp_timestamp``)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def to_bytes(self) -> bytes:
        info = _pack(
            _SENDER_INFO,
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp,
            self.packet_count,
            self.octet_count,
        )
        return _packet(SR, len(self.reports), info + _blocks_bytes(self.reports))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """An RR: reports from a participant that sent no RTP since its previous report."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def to_bytes(self) -> bytes:
        body = _pack(_SSRC, self.ssrc) + _blocks_bytes(self.reports)
        return _packet(RR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One source's description; only the CNAME is kept (None if the chunk had none)."""

    ssrc: int
    cname: str | None = None

    def to_bytes(self) -> bytes:
        item = b""
        if self.cname is not None:
            text = self.cname.encode()
            if len(text) > 255:
                raise ValueError("CNAME longer than 255 bytes")
            item = bytes((CNAME, len(text))) + text
        # The item list ends with at least one null octet, then nulls up to a 32-bit
        # boundary: 1 to 4 of them after the 4-byte SSRC.
        return _pack(_SSRC, self.ssrc) + item + bytes(4 - len(item) % 4)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """An SDES packet."""

    chunks: tuple[SdesChunk, ...]

    @classmethod
    def cname(cls, ssrc: int, cname: str) -> SourceDescription:
        """The SDES every compound packet carries: one chunk with our CNAME."""
        return cls((SdesChunk(ssrc, cname),))

    def to_bytes(self) -> bytes:
        if len(self.chunks) > MAX_REPORT_BLOCKS:
            raise ValueError(f"{len(self.chunks)} SDES chunks, at most 31 fit")
        body = b"".join(chunk.to_bytes() for chunk in self.chunks)
        return _packet(SDES, len(self.chunks), body)


@dataclass(frozen=True, slots=True)
class Bye:
    """A BYE: these sources leave, with an optional reason."""

    ssrcs: tuple[int, ...]
    reason: str | None = None

    def to_bytes(self) -> bytes:
        if len(self.ssrcs) > MAX_REPORT_BLOCKS:
            raise ValueError(f"{len(self.ssrcs)} sources in a BYE, at most 31 fit")
        body = b"".join(_pack(_SSRC, ssrc) for ssrc in self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode()
            if len(text) > 255:
                raise ValueError("BYE reason longer than 255 bytes")
            body += bytes((len(text),)) + text + bytes(-(1 + len(text)) % 4)
        return _packet(BYE, len(self.ssrcs), body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye


def compound(report: SenderReport | ReceiverReport, *others: RtcpPacket) -> bytes:
    """A compound packet (RFC 3550 6.1): the SR, or an RR when nothing was sent, first;
    then ``others`` in order, which should include a CNAME SDES, and a BYE, if any, last."""
    return report.to_bytes() + b"".join(packet.to_bytes() for packet in others)


def _sender_report(body: bytes, count: int) -> SenderReport:
    if len(body) < _SENDER_INFO.size:
        raise RtcpError("truncated sender report")
    ssrc, ntp, rtp_timestamp, packets, octets = _SENDER_INFO.unpack_from(body)
    blocks = _blocks(body, _SENDER_INFO.size, count)
    return SenderReport(ssrc, ntp, rtp_timestamp, packets, octets, blocks)


def _receiver_report(body: bytes, count: int) -> ReceiverReport:
    if len(body) < _SSRC.size:
        raise RtcpError("truncated receiver report")
    (ssrc,) = _SSRC.unpack_from(body)
    return ReceiverReport(ssrc, _blocks(body, _SSRC.size, count))


def _source_description(body: bytes, count: int) -> SourceDescription:
    chunks = []
    offset = 0
    for _ in range(count):
        if len(body) < offset + _SSRC.size:
            raise RtcpError("truncated SDES chunk")
        (ssrc,) = _SSRC.unpack_from(body, offset)
        offset += _SSRC.size
        cname = None
        while True:
            if offset >= len(body):
                raise RtcpError("SDES items without their terminating null")
            item = body[offset]
            if item == 0:
                # The next chunk starts at the 32-bit boundary after this null octet.
                offset = (offset + 4) & ~3
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpError("truncated SDES item")
            length = body[offset + 1]
            if item == CNAME and cname is None:
                cname = body[offset + 2 : offset + 2 + length].decode("utf-8", "replace")
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, cname))
    return SourceDescription(tuple(chunks))


def _bye(body: bytes, count: int) -> Bye:
    end = count * _SSRC.size
    if len(body) < end:
        raise RtcpError("truncated BYE")
    ssrcs = tuple(_SSRC.unpack_from(body, i * _SSRC.size)[0] for i in range(count))
    reason = None
    if len(body) > end:
        length = body[end]
        if len(body) < end + 1 + length:
            raise RtcpError("truncated BYE reason")
        reason = body[end + 1 : end + 1 + length].decode("utf-8", "replace")
    return Bye(ssrcs, reason)


_PARSERS: dict[int, Callable[[bytes, int], RtcpPacket]] = {
    SR: _sender_report,
    RR: _receiver_report,
    SDES: _source_description,
    BYE: _bye,
}


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """The SR, RR, SDES and BYE packets of a compound packet, in order; other types
    (feedback, XR, APP) are skipped. Every packet is bounds-checked against its length
    field and the length fields must add up to the datagram. That the first packet is a
    report is not checked: reduced-size RTCP (RFC 5506), which browsers use when it is
    negotiated, sends feedback alone."""
    if not data:
        raise RtcpError("empty datagram")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(data) < offset + _HEADER.size:
            raise RtcpError("truncated RTCP header")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpError("not RTCP version 2")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise RtcpError("RTCP length beyond the datagram")
        body_end = end
        if first & _PADDING:
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - _HEADER.size:
                raise RtcpError("bad RTCP padding")
            body_end -= padding
        parser = _PARSERS.get(packet_type)
        if parser is not None:
            packets.append(parser(data[offset + _HEADER.size : body_end], first & 0x1F))
        offset = end
    return packets


def ntp_timestamp(unix_time: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point seconds since 1900) of a Unix time,
    wrapping in 2036 as NTP does."""
    seconds = math.floor(unix_time)
    fraction = int((unix_time - seconds) * (1 << 32))
    return ((seconds + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32 | fraction


def ntp_short(unix_time: float) -> int:
    """The middle 32 bits of the NTP timestamp (16.16 seconds), the form of LSR, DLSR
    and the arrival time in the round trip computation."""
    return compact_ntp(ntp_timestamp(unix_time))


def compact_ntp(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp (what an RR's LSR echoes)."""
    return (ntp >> 16) & 0xFFFFFFFF


def ntp_to_unix(ntp: int) -> float:
    """The Unix time of a 64-bit NTP timestamp. Seconds with the top bit clear are read
    as after the 2036 wrap (RFC 4330 section 3), so times from 1968 to 2104 come back."""
    seconds = ntp >> 32
    if not seconds & 0x80000000:
        seconds += 1 << 32
    return seconds - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def round_trip_time(block: ReportBlock, arrival: float) -> float | None:
    """The round trip in seconds to the source of ``block``, a report about a stream we
    send, received at Unix time ``arrival``: arrival - LSR - DLSR (RFC 3550 6.4.1).
    None when the peer has not heard an SR from us yet, or when the result is negative
    beyond rounding (a peer's wrong DLSR)."""
    if block.last_sr == 0:
        return None
    units = (ntp_short(arrival) - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF
    if units >= _HALF_TS:
        return 0.0 if units > 0xFFFFFFFF - _RTT_SLACK else None
    return units / 65536


class ReceptionStats:
    """The reception statistics of one RTP source (one SSRC) that we receive, kept as in
    RFC 3550 Appendix A: sequence validation with wrap-around, probation and restart
    (A.1), loss over each report interval (A.3) and interarrival jitter (A.8, here as a
    float in timestamp units rather than the RFC's scaled integer).

    Until ``MIN_SEQUENTIAL`` packets arrived in order the source is on probation:
    nothing is counted and ``report_block`` returns None. The packets of the probation
    are not counted afterwards either (the RFC does the same)."""

    __slots__ = (
        "_last_arrival",
        "_last_sr",
        "_last_sr_arrival",
        "_last_timestamp",
        "_seen",
        "bad_seq",
        "base_seq",
        "clock_rate",
        "cycles",
        "expected_prior",
        "jitter",
        "max_seq",
        "probation",
        "received",
        "received_prior",
        "ssrc",
    )

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.probation = MIN_SEQUENTIAL
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = _SEQ_MOD + 1
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self.clock_rate = 0
        self._seen = False
        self._last_arrival = 0.0
        self._last_timestamp: int | None = None
        self._last_sr = 0
        self._last_sr_arrival = 0.0

    def receive(self, sequence: int, timestamp: int, arrival: float, clock_rate: int) -> bool:
        """Count an RTP packet of this source that arrived at Unix time ``arrival``.
        Returns whether it is valid (A.1): False while on probation and for a packet
        far out of sequence, which is not counted (two in a row restart the count)."""
        if clock_rate <= 0:
            raise ValueError(f"invalid clock rate {clock_rate}")
        sequence &= 0xFFFF
        if not self._seen:
            self._seen = True
            self._init_seq(sequence)
            self.max_seq = (sequence - 1) & 0xFFFF
        valid = self._update_seq(sequence)
        if valid or self.probation:
            self._update_jitter(timestamp & 0xFFFFFFFF, arrival, clock_rate)
        return valid

    def _init_seq(self, sequence: int) -> None:
        self.base_seq = sequence
        self.max_seq = sequence
        self.bad_seq = _SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def _update_seq(self, sequence: int) -> bool:
        delta = (sequence - self.max_seq) & 0xFFFF
        if self.probation:
            # A.1 compares with max_seq + 1 without wrapping; 65535 -> 0 is in order.
            if sequence == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = sequence
                if self.probation == 0:
                    self._init_seq(sequence)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = sequence
            return False
        if delta < MAX_DROPOUT:
            if sequence < self.max_seq:
                self.cycles += _SEQ_MOD
            self.max_seq = sequence
        elif delta <= _SEQ_MOD - MAX_MISORDER:
            if sequence != self.bad_seq:
                self.bad_seq = (sequence + 1) & 0xFFFF
                return False
            # Two packets in sequence after a big jump: the sender restarted.
            self._init_seq(sequence)
            self._last_timestamp = None
        # Otherwise a duplicate or a packet reordered by less than MAX_MISORDER.
        self.received += 1
        return True

    def _update_jitter(self, timestamp: int, arrival: float, clock_rate: int) -> None:
        if clock_rate != self.clock_rate:
            # Another payload type at another clock: timestamps before and after do not
            # compare, and the estimate moves to the new unit.
            if self.clock_rate:
                self.jitter *= clock_rate / self.clock_rate
            self.clock_rate = clock_rate
            self._last_timestamp = None
        if self._last_timestamp is not None:
            elapsed = ((timestamp - self._last_timestamp + _HALF_TS) & 0xFFFFFFFF) - _HALF_TS
            difference = (arrival - self._last_arrival) * clock_rate - elapsed
            self.jitter += (abs(difference) - self.jitter) / 16
        self._last_arrival = arrival
        self._last_timestamp = timestamp

    def sender_report(self, report: SenderReport, arrival: float) -> None:
        """Note an SR from this source, received at Unix time ``arrival``, for the LSR and
        DLSR of our next report block."""
        if report.ssrc != self.ssrc:
            raise ValueError(f"SR from {report.ssrc:#x} given to the stats of {self.ssrc:#x}")
        self._last_sr = compact_ntp(report.ntp_timestamp)
        self._last_sr_arrival = arrival

    @property
    def extended_highest(self) -> int:
        """The highest sequence number received, extended with the wrap-around count."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        if self.probation:
            return 0
        return self.extended_highest - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Packets lost so far; negative when duplicates outnumber the losses."""
        return self.expected - self.received

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate if self.clock_rate else 0.0

    def report_block(self, now: float) -> ReportBlock | None:
        """The report block about this source for a report sent at Unix time ``now``;
        starts a new loss interval (A.3). None while the source is on probation."""
        if self.probation:
            return None
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        delay = 0
        if self._last_sr:
            delay = min(0xFFFFFFFF, max(0, int((now - self._last_sr_arrival) * 65536)))
        return ReportBlock(
            self.ssrc,
            fraction,
            max(-0x800000, min(0x7FFFFF, self.lost)),
            self.extended_highest & 0xFFFFFFFF,
            min(0xFFFFFFFF, int(self.jitter)),
            self._last_sr,
            delay,
        )
