"""The conference mixer: N parties, each hearing everyone but itself.

Each member is a relay side taken over by the mixer: what its party sends is tapped,
jitter-buffered and decoded (inbound.py); on every tick of the 20 ms clock the mixer sums
the members' frames once and sends each member the sum less its own frame, encoded in
its codec, as the RTP stream of the server (its own SSRC, sequence and timestamps).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Protocol

import numpy as np

from nuage.media import g711
from nuage.media.codecs import encoder_for
from nuage.media.inbound import FRAME_SAMPLES, InboundAudio
from nuage.media.player import FRAME_SECONDS, FrameClock
from nuage.media.rtp import RtpSender
from nuage.media.sdp import RtpMap


class MixableSide(Protocol):
    """A relay side: its party's packets can be tapped, and it can hear what we send."""

    def add_listener(self, listener: Callable[[bytes], object]) -> None: ...

    def remove_listener(self, listener: Callable[[bytes], object]) -> None: ...

    def hear_server(self) -> Callable[[bytes], None]: ...

    def silence(self) -> None: ...


class Member:
    """One party of a conference. A muted member is neither heard nor sent anything
    (a party that put the conference on hold)."""

    def __init__(self, side: MixableSide, receives: Mapping[int, RtpMap], codec: RtpMap) -> None:
        self._encoder = encoder_for(codec.encoding, codec.clock_rate, codec.channels or 1)
        self.side = side
        self.inbound = InboundAudio(receives)
        self.muted = False
        self._sender = RtpSender(codec.payload_type)
        self._timestamps = round(codec.clock_rate * FRAME_SECONDS)
        self._send = side.hear_server()
        self._sent = 0
        side.add_listener(self.inbound.packet)

    def send(self, pcm: g711.Pcm) -> None:
        # The first packet starts a talkspurt (RFC 3551 4.1): the phone resyncs its buffer.
        packet = self._sender.packet(
            self._encoder.encode(pcm), self._timestamps, marker=not self._sent
        )
        self._send(packet)
        self._sent += 1

    def detach(self) -> None:
        self.side.remove_listener(self.inbound.packet)
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
        member = Member(side, receives, codec)
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
