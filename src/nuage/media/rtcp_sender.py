"""RTCP for the RTP streams the server itself originates (music on hold, prompts, a
conference's mix): sender reports with the server's CNAME at the RFC 3550 interval, so
that the phone hearing the stream can map its timestamps to wall-clock time and compute
round trips, and a BYE when the stream ends (RFC 3550 6.4.1, 6.3.7).

The interval (RFC 3550 6.2, 6.3.1): each such stream is a two-member session (the phone
and the server's stream). Its deterministic interval ``max(Tmin, n * C / rtcp_bw)`` is
always the minimum ``Tmin`` of 5 s: with n = 2 members, compound packets of C = 80 to 100
octets and an RTCP bandwidth of 5 % of even the thinnest audio stream (16 kbit/s of
IP/UDP/RTP headers alone at 50 packets a second, so at least 100 octets a second) the
bandwidth term stays under 2 s. The first report comes after half the minimum (6.2
allows it, so that the phone learns the mapping early). Each interval is then spread
uniformly over [0.5, 1.5] times that value. The division by e - 3/2 of 6.3.1 is left
out: it compensates for timer reconsideration, which a session whose membership never
changes does not need, and would bring the mean interval under the 5 s minimum.

The stream's owner counts each packet as it sends it (``RtcpReporter.sent``), which
answers with a report when one is due: while none is, that is one comparison. Times
given in (``now``) are the owner's monotonic seconds; the wall clock is read only to
stamp a report.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from nuage.media.rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpError,
    SenderReport,
    SourceDescription,
    compound,
    ntp_timestamp,
    parse_compound,
)
from nuage.media.rtp import RtpPacket

__all__ = [
    "DEFAULT_CNAME",
    "MIN_REPORT_INTERVAL",
    "Reception",
    "ReportSettings",
    "RtcpReporter",
    "report_interval",
]

MIN_REPORT_INTERVAL = 5.0
"""RFC 3550 6.2: the recommended minimum interval between reports, in seconds."""

DEFAULT_CNAME = "nuage"


def report_interval(minimum: float, uniform: float, *, initial: bool = False) -> float:
    """The time to the next report (see the module docstring): ``minimum`` (halved for
    the first report) spread by ``uniform``, a random value in [0, 1), over 0.5 to 1.5
    times it."""
    base = minimum / 2 if initial else minimum
    return base * (0.5 + uniform)


class RtcpReporter:
    """The RTCP of one RTP stream the server sends (its SSRC, at ``clock_rate``): what
    was sent (packets, payload octets, the timestamp of the last packet and when it went)
    and when the next report is due.

    ``uniform`` is the random source of the interval (``random.random`` by default:
    inject a constant in tests); ``wall_clock`` gives the Unix time a report is stamped
    with. The first report is scheduled by the first ``sent`` (or ``poll``)."""

    __slots__ = (
        "_due",
        "_last_sent",
        "_last_timestamp",
        "_reported",
        "_uniform",
        "_wall_clock",
        "clock_rate",
        "cname",
        "interval",
        "octets",
        "packets",
        "reception",
        "ssrc",
    )

    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        *,
        cname: str = DEFAULT_CNAME,
        interval: float = MIN_REPORT_INTERVAL,
        uniform: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"invalid clock rate {clock_rate}")
        if not interval > 0:
            raise ValueError(f"invalid RTCP interval {interval}")
        if not 0 < len(cname.encode()) <= 255:
            raise ValueError("a CNAME is 1 to 255 bytes")
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.cname = cname
        self.interval = interval
        self.packets = 0
        self.octets = 0
        self._last_timestamp = 0
        self._last_sent = 0.0
        # The packet counts at the previous two reports: an SR only while packets were
        # sent since the report before last (RFC 3550 6.4), an RR otherwise.
        self._reported = (0, 0)
        self._uniform = uniform
        self._wall_clock = wall_clock
        # Not scheduled yet: the first poll schedules the first report.
        self._due = -math.inf
        self.reception: Reception | None = None
        """Where the server also receives the party's stream (a conference, a transcoded
        call): its reports then carry a report block about that stream (RFC 3550 6.4)."""

    @property
    def due(self) -> float:
        """When the next report is due (the owner's monotonic seconds); -inf before the
        first poll, inf after the BYE."""
        return self._due

    def sent(self, timestamp: int, payload_octets: int, now: float) -> bytes | None:
        """Count a packet with RTP ``timestamp`` and ``payload_octets`` of payload (not
        the header), sent at ``now``. Returns the compound report (SR, SDES) to send the
        stream's receiver when one is due, else None."""
        self.packets += 1
        self.octets += payload_octets
        self._last_timestamp = timestamp
        self._last_sent = now
        if now < self._due:
            return None
        return self._next(now)

    def poll(self, now: float) -> bytes | None:
        """The compound report to send at ``now`` if one is due, else None (for a tick
        on which nothing was sent)."""
        if now < self._due:
            return None
        return self._next(now)

    def _next(self, now: float) -> bytes | None:
        if self._due == -math.inf:
            self._due = now + report_interval(self.interval, self._uniform(), initial=True)
            return None
        return self.report(now)

    def report(self, now: float) -> bytes:
        """The compound report (an SR, or an RR when nothing was sent lately, then the
        SDES CNAME) at ``now``, due or not; the next one is scheduled from ``now``."""
        packet = compound(self._report(now), SourceDescription.cname(self.ssrc, self.cname))
        self._due = now + report_interval(self.interval, self._uniform())
        return packet

    def bye(self, now: float, reason: str | None = None) -> bytes | None:
        """The compound packet ending the stream at ``now``: a last report, the SDES CNAME
        and a BYE for the SSRC (RFC 3550 6.1 wants all three). None when nothing was
        ever sent: a source that sent nothing must not send a BYE (6.3.7), and when the
        BYE was already made. No report is due afterwards."""
        if self.packets == 0 or self._due == math.inf:
            return None
        packet = compound(
            self._report(now),
            SourceDescription.cname(self.ssrc, self.cname),
            Bye((self.ssrc,), reason),
        )
        self._due = math.inf
        return packet

    def _report(self, now: float) -> SenderReport | ReceiverReport:
        before_last, last = self._reported
        self._reported = (last, self.packets)
        wall = self._wall_clock()
        blocks: tuple[ReportBlock, ...] = ()
        if self.reception is not None:
            block = self.reception.report_block(wall)
            blocks = () if block is None else (block,)
        if self.packets == before_last:
            return ReceiverReport(self.ssrc, blocks)
        # The RTP timestamp of the instant the NTP timestamp gives: the last packet's,
        # moved on by the time since it was sent, in the codec's clock.
        elapsed = round((now - self._last_sent) * self.clock_rate)
        return SenderReport(
            self.ssrc,
            ntp_timestamp(wall),
            (self._last_timestamp + elapsed) & 0xFFFFFFFF,
            self.packets & 0xFFFFFFFF,
            self.octets & 0xFFFFFFFF,
            blocks,
        )


class Reception:
    """The stream a party sends to the server where the server terminates it: reception
    statistics of its current source (a new SSRC starts them over), and its SRs for the
    LSR/DLSR of our report blocks. Fed the party's RTP (``rtp``) and RTCP (``rtcp``)."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._stats: ReceptionStats | None = None

    def rtp(self, packet: RtpPacket, arrival: float) -> None:
        """A packet of the party's, received at Unix time ``arrival``."""
        if self._stats is None or self._stats.ssrc != packet.ssrc:
            self._stats = ReceptionStats(packet.ssrc)
        self._stats.receive(packet.sequence, packet.timestamp, arrival, self.clock_rate)

    def rtcp(self, data: bytes) -> None:
        """A datagram from the party's RTCP port: its SRs are noted."""
        if self._stats is None:
            return
        try:
            packets = parse_compound(data)
        except RtcpError:
            return
        for packet in packets:
            if isinstance(packet, SenderReport) and packet.ssrc == self._stats.ssrc:
                self._stats.sender_report(packet, time.time())

    def report_block(self, now: float) -> ReportBlock | None:
        return None if self._stats is None else self._stats.report_block(now)


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """How the server reports the streams it originates: its CNAME, one for the whole
    server (RFC 3550 6.5.1, ``nuage@<address>``), the minimum interval (5 s; short in
    tests), the random source spreading it and the wall clock stamping reports."""

    cname: str = DEFAULT_CNAME
    interval: float = MIN_REPORT_INTERVAL
    uniform: Callable[[], float] = random.random
    wall_clock: Callable[[], float] = time.time

    def reporter(self, ssrc: int, clock_rate: int) -> RtcpReporter:
        return RtcpReporter(
            ssrc,
            clock_rate,
            cname=self.cname,
            interval=self.interval,
            uniform=self.uniform,
            wall_clock=self.wall_clock,
        )
