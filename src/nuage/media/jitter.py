"""A jitter buffer for the streams the server terminates (recorder, mixer, DTMF detection).
Relayed media never goes through one: the relay forwards each datagram as it comes.

Sans-I/O: the owner pushes each packet with its arrival time and pops one frame per
20 ms tick of its own clock. Playout follows sequence numbers, one packet per tick, so a
sender whose clock runs a little fast or slow only makes the buffer deeper or shallower,
which the buffer then corrects. A missing frame comes out as ``None`` for the owner to
conceal (see ``Concealer``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from nuage.media.g711 import Pcm
from nuage.media.rtp import RtpPacket

FRAME_SECONDS = 0.020

# The target delay in RFC 3550 jitters. With transit times spread evenly over a range,
# that jitter (a mean difference of transit times) comes to a third of the range.
_JITTER_MARGIN = 3
# Frames above the target the buffer may hold before it drops one to catch up; without
# this slack it would drop a frame at every burst.
_SLACK = 2
# Packets in a row asking for a smaller target before it shrinks by one frame: the
# target grows at once but shrinks by a frame a second, so bursts a few seconds apart
# find it still wide.
_SHRINK_AFTER = 50


@dataclass(slots=True)
class JitterStats:
    """Counters since the buffer was created."""

    received: int = 0
    """Packets pushed."""
    late: int = 0
    """Packets that came after their turn to play (or from a stream already replaced)."""
    duplicate: int = 0
    """Packets received twice; the copy is dropped."""
    lost: int = 0
    """Frames given up: no packet when their turn came (``None``, to conceal)."""
    underrun: int = 0
    """Ticks that held the playout point while playing, the buffer empty or waiting for
    a missing packet: also ``None`` to conceal, but nothing skipped."""
    discarded: int = 0
    """Frames dropped to bring the delay back to the target, and stray far-ahead packets."""
    reset: int = 0
    """Times the buffer started over: new SSRC, confirmed sequence jump, or overflow."""


class _State(enum.Enum):
    IDLE = enum.auto()  # no stream, or it stopped sending: ``None`` is silence, not loss
    WAITING = enum.auto()  # buffering up to the target delay before the first frame
    PLAYING = enum.auto()


class JitterBuffer:
    """Reorders one RTP stream, drops duplicates and late packets, and plays it out with
    a delay that follows the observed jitter between ``min_delay`` and ``max_delay``.

    The target is a multiple of the RFC 3550 jitter; it grows at once and shrinks by a
    frame a second. The buffer follows it both ways: while it is shallower than the
    target, a missing packet is waited for (the playout point holds for a tick and the
    owner conceals), which is how the delay grows; while it is deeper than the target
    and some slack, it drops a frame a tick.

    One packet is taken to carry one frame of ``frame_seconds`` (ptime 20 for G.711).
    The buffer never holds more than ``capacity`` frames, whatever is pushed into it.
    """

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        frame_seconds: float = FRAME_SECONDS,
        min_delay: float = 0.040,
        max_delay: float = 0.200,
        capacity: int = 50,
    ) -> None:
        self._frame_seconds = frame_seconds
        self._clock_rate = clock_rate
        self._min_frames = max(1, math.ceil(min_delay / frame_seconds - 1e-9))
        self._max_frames = max(self._min_frames, math.ceil(max_delay / frame_seconds - 1e-9))
        if capacity <= self._max_frames + _SLACK:
            raise ValueError("capacity must exceed the maximum delay and its slack")
        self._capacity = capacity
        # Played sequence numbers are remembered this far back, to tell a duplicate of
        # an already played packet from one that is merely late.
        self._history_mask = (1 << (2 * capacity)) - 1
        self.stats = JitterStats()

        self._target = self._min_frames
        self._calm = 0
        self._jitter = 0.0
        self._last_arrival = 0.0
        self._last_timestamp = 0

        self._state = _State.IDLE
        self._ssrc: int | None = None
        self._old_ssrc: int | None = None
        # Extended (unwrapped) sequence numbers from here on.
        self._next = 0
        self._highest = 0
        self._seen = 0
        self._frames: dict[int, bytes] = {}
        self._first_arrival = 0.0
        # Starved this long, the stream is taken to have paused rather than to be late.
        self._idle_after = self._max_frames
        self._starved = 0
        self._jump_successor: int | None = None

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def target_delay(self) -> float:
        """The playout delay the buffer aims at now, in seconds (whole frames)."""
        return self._target * self._frame_seconds

    @property
    def jitter(self) -> float:
        """Interarrival jitter as RFC 3550 6.4.1 estimates it, in seconds."""
        return self._jitter

    @property
    def playing(self) -> bool:
        """Whether a ``None`` from ``pop`` now means a frame to conceal (rather than no
        stream at all, or one still filling the buffer)."""
        return self._state is _State.PLAYING

    def push(self, packet: RtpPacket, arrival: float) -> None:
        """Take one packet received at ``arrival`` (seconds, the owner's clock)."""
        self.stats.received += 1
        if packet.ssrc != self._ssrc:
            if self._ssrc is None:
                self._start(packet, arrival)
            elif packet.ssrc == self._old_ssrc:
                # A straggler of the stream just replaced: it must not switch back.
                self.stats.late += 1
            else:
                self.stats.reset += 1
                self._old_ssrc = self._ssrc
                self._start(packet, arrival)
            return

        sequence = self._extend(packet.sequence)
        if sequence - self._highest > self._capacity or self._next - sequence > self._capacity:
            self._far(packet, sequence, arrival)
            return
        self._jump_successor = None

        if sequence in self._frames or self._was_seen(sequence):
            self.stats.duplicate += 1
            return
        self._mark_seen(sequence)
        self._measure(packet, arrival)

        if sequence < self._next:
            if self._state is _State.WAITING and self._highest - sequence < self._capacity:
                # Overtaken before playout began: it simply starts the stream earlier.
                self._next = sequence
            else:
                self.stats.late += 1
                return
        elif self._state is _State.IDLE or (
            self._state is _State.PLAYING and packet.marker and not self._frames
        ):
            # A stream resuming, or a talkspurt starting with nothing left to play: the
            # silence before it can absorb a new delay, so playout re-aligns here.
            self._state = _State.WAITING
            self._first_arrival = arrival
            self._next = sequence
        self._frames[sequence] = packet.payload

        if sequence - self._next >= self._capacity:
            # Far more than the delay ever needs (a flood, or a stall released at once):
            # keep the newest frames, as many as the target delay.
            self.stats.reset += 1
            self.stats.discarded += self._drop_before(sequence - self._target + 1)
            self._next = sequence - self._target + 1

    def pop(self, now: float) -> bytes | None:
        """The payload to play at this tick, or ``None``: nothing to play yet, or a frame
        missing (when ``playing``) that the owner should conceal. Call once per frame."""
        if self._state is _State.IDLE:
            return None
        if self._state is _State.WAITING:
            if now < self._first_arrival + self.target_delay:
                return None
            self._state = _State.PLAYING
            self._starved = 0

        if not self._frames:
            # Nothing buffered: hold the playout point, so a delayed packet still plays
            # when it comes (the delay grows by the gap). A long gap is the stream
            # stopping (hold, silence suppression), not loss.
            self.stats.underrun += 1
            self._starved += 1
            if self._starved >= self._idle_after:
                self._state = _State.IDLE
            return None
        depth = self._highest - self._next + 1
        if (
            self._next not in self._frames
            and depth <= self._target
            and self._starved < self._target
        ):
            # A hole while the buffer is shallower than the target: wait for it a while
            # rather than give it up. This is how the delay grows to the target.
            self.stats.underrun += 1
            self._starved += 1
            return None
        self._starved = 0

        if depth > self._target + _SLACK:
            # Deeper than needed: skip one frame per tick until back within the slack.
            if self._frames.pop(self._next, None) is not None:
                self.stats.discarded += 1
            self._next += 1
        payload = self._frames.pop(self._next, None)
        self._next += 1
        if payload is None:
            self.stats.lost += 1
        return payload

    def _start(self, packet: RtpPacket, arrival: float) -> None:
        """Begin a new stream with ``packet``; the jitter estimate carries over, as the
        network path is likely the same."""
        self._ssrc = packet.ssrc
        self._state = _State.WAITING
        self._first_arrival = arrival
        self._next = self._highest = packet.sequence
        self._seen = 1
        self._frames = {packet.sequence: packet.payload}
        self._last_arrival = arrival
        self._last_timestamp = packet.timestamp
        self._jump_successor = None

    def _far(self, packet: RtpPacket, sequence: int, arrival: float) -> None:
        # A sequence number far from the stream is a stray packet, or the sender
        # restarting its numbering. As RFC 3550 A.1 does, a restart is believed only
        # when the next packet follows on from the jump.
        if packet.sequence == self._jump_successor:
            self.stats.reset += 1
            self._start(packet, arrival)
            return
        self._jump_successor = (packet.sequence + 1) & 0xFFFF
        if sequence < self._next:
            self.stats.late += 1
        else:
            self.stats.discarded += 1

    def _extend(self, sequence: int) -> int:
        """The unwrapped sequence number nearest to the highest one seen."""
        delta = ((sequence - self._highest + 0x8000) & 0xFFFF) - 0x8000
        return self._highest + delta

    def _was_seen(self, sequence: int) -> bool:
        back = self._highest - sequence
        return back >= 0 and bool(self._seen >> back & 1)

    def _mark_seen(self, sequence: int) -> None:
        if sequence > self._highest:
            self._seen = (self._seen << (sequence - self._highest) | 1) & self._history_mask
            self._highest = sequence
        else:
            self._seen = (self._seen | 1 << (self._highest - sequence)) & self._history_mask

    def _drop_before(self, sequence: int) -> int:
        stale = [key for key in self._frames if key < sequence]
        for key in stale:
            del self._frames[key]
        return len(stale)

    def _measure(self, packet: RtpPacket, arrival: float) -> None:
        """Update the jitter estimate (RFC 3550 6.4.1) and the target delay from it."""
        elapsed = ((packet.timestamp - self._last_timestamp + 2**31) & 0xFFFFFFFF) - 2**31
        difference = (arrival - self._last_arrival) - elapsed / self._clock_rate
        self._jitter += (abs(difference) - self._jitter) / 16
        self._last_arrival = arrival
        self._last_timestamp = packet.timestamp

        wanted = math.ceil(_JITTER_MARGIN * self._jitter / self._frame_seconds - 1e-9)
        wanted = min(max(wanted, self._min_frames), self._max_frames)
        if wanted > self._target:
            self._target = wanted
            self._calm = 0
        elif wanted < self._target:
            self._calm += 1
            if self._calm >= _SHRINK_AFTER:
                self._target -= 1
                self._calm = 0
        else:
            self._calm = 0


class Concealer:
    """Turns the frames a jitter buffer reports missing into sound: the last good frame
    again, fading out over ``fade_frames``, then silence. A lost packet is then a short
    blur rather than a click, and a long gap is quiet rather than a buzz."""

    def __init__(self, samples: int = 160, fade_frames: int = 3) -> None:
        self._last: Pcm = np.zeros(samples, dtype=np.int16)
        self._fade_frames = fade_frames
        self._missing = 0

    def fill(self, pcm: Pcm | None) -> Pcm:
        """``pcm`` itself when there is a frame, else a frame that stands in for it."""
        if pcm is not None:
            self._last = pcm
            self._missing = 0
            return pcm
        missing = self._missing
        self._missing += 1
        if missing >= self._fade_frames:
            return np.zeros(len(self._last), dtype=np.int16)
        # The gain falls sample by sample, continuous from one concealed frame to the next.
        start = 1 - missing / self._fade_frames
        stop = 1 - (missing + 1) / self._fade_frames
        gain = np.linspace(start, stop, len(self._last), endpoint=False)
        return np.round(self._last * gain).astype(np.int16)
