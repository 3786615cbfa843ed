"""The conference mixer: N parties, each hearing everyone but itself.

Each member is a relay side taken over by the mixer: what its party sends is tapped,
jitter-buffered and decoded (inbound.py); on every tick of the 20 ms clock the mixer sums
the members' frames once and sends each member the sum less its own frame, encoded in
its codec, as the RTP stream of the server (its own SSRC, sequence and timestamps),
reported to the member's party in RTCP (sender reports, and a BYE when it leaves).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np

from nuage.media import g711
from nuage.media.codecs import encoder_for
from nuage.media.inbound import FRAME_SAMPLES, InboundAudio
from nuage.media.player import FRAME_SECONDS, FrameClock
from nuage.media.rtcp_sender import Reception, ReportSettings
from nuage.media.rtp import RtpSender
from nuage.media.sdp import RtpMap


class MixableSide(Protocol):
    """A relay side: its party's packets can be tapped, and it can hear what we send
    (RTP, and RTCP about it)."""

    def add_listener(self, listener: Callable[[bytes], object], *, rtcp: bool = False) -> None: ...

    def remove_listener(
        self, listener: Callable[[bytes], object], *, rtcp: bool = False
    ) -> None: ...

    def hear_server(self) -> Callable[[bytes], None]: ...

    def send_rtcp(self, packet: bytes) -> None: ...

    def silence(self) -> None: ...


class Member:
    """One party of a conference. A muted member is neither heard nor sent anything
    (a party that put the conference on hold). Its party gets RTCP about the stream it
    hears as ``reports`` say: sender reports with a block about the stream it sends (the
    server receives it, nobody else does), and a BYE on ``detach``."""

    def __init__(
        self,
        side: MixableSide,
        receives: Mapping[int, RtpMap],
        codec: RtpMap,
        reports: ReportSettings | None = None,
    ) -> None:
        self._encoder = encoder_for(codec.encoding, codec.clock_rate, codec.channels or 1)
        self.side = side
        self._reception = Reception(codec.clock_rate)
        self.inbound = InboundAudio(receives, self._reception)
        self.muted = False
        self._sender = RtpSender(codec.payload_type)
        self._timestamps = round(codec.clock_rate * FRAME_SECONDS)
        self._send = side.hear_server()
        self._sent = 0
        settings = ReportSettings() if reports is None else reports
        self._reporter = settings.reporter(self._sender.ssrc, codec.clock_rate)
        self._reporter.reception = self._reception
        side.add_listener(self.inbound.packet)
        side.add_listener(self._reception.rtcp, rtcp=True)

    @property
    def ssrc(self) -> int:
        """The SSRC of the stream this member's party hears."""
        return self._sender.ssrc

    def send(self, pcm: g711.Pcm) -> None:
        payload = self._encoder.encode(pcm)
        sender = self._sender
        timestamp = sender.timestamp
        # The first packet starts a talkspurt (RFC 3551 4.1): the phone resyncs its buffer.
        self._send(sender.packet(payload, self._timestamps, marker=not self._sent))
        self._sent += 1
        report = self._reporter.sent(timestamp, len(payload), time.monotonic())
        if report is not None:
            self.side.send_rtcp(report)

    def detach(self) -> None:
        bye = self._reporter.bye(time.monotonic())
        if bye is not None:
            self.side.send_rtcp(bye)
        self.side.remove_listener(self.inbound.packet)
        self.side.remove_listener(self._reception.rtcp, rtcp=True)
        self.side.silence()


class ConferenceMixer:
    """Mixes its members on ``clock`` while it has any."""

    def __init__(self, clock: FrameClock) -> None:
        self._clock = clock
        self._members: list[Member] = []
        self._loop = asyncio.get_running_loop()

    def __len__(self) -> int:
        return len(self._members)

    def add(self, side: MixableSide, receives: Mapping[int, RtpMap], codec: RtpMap) -> Member:
        """Take ``side`` over: its party (sending ``receives``' codecs) hears the others in
        ``codec`` from now on. Raises ``UnsupportedCodecError``."""
        member = Member(side, receives, codec, self._clock.reports)
        self._members.append(member)
        if len(self._members) == 1:
            self._clock.add(self)
        return member

    def remove(self, member: Member) -> None:
        """Give the side back, hearing nothing."""
        if member in self._members:
            self._members.remove(member)
            member.detach()
        if not self._members:
            self._clock.remove(self)

    def close(self) -> None:
        for member in list(self._members):
            self.remove(member)

    def on_tick(self, tick: int) -> None:
        now = self._loop.time()
        active = [member for member in self._members if not member.muted]
        frames = [member.inbound.frame(now) for member in active]
        total = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        for frame in frames:
            if frame is not None:
                total += frame
        for member, own in zip(active, frames, strict=True):
            heard = total if own is None else total - own
            member.send(np.clip(heard, -32768, 32767).astype(np.int16))
