"""Sounds the server plays into calls (music on hold, later prompts), on one 20 ms clock.

A ``Sound`` is encoded once per codec, the first time a call needs it in that codec, and
its frames are shared by every call playing it. Looped sounds play like a radio: every
listener hears the frame of the current tick, so a thousand held calls cost a thousand
``sendto`` per tick and no encoding at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

import numpy as np

from nuage.media import g711
from nuage.media.codecs import UnsupportedCodecError, encoder_for, supported
from nuage.media.rtp import RtpSender

__all__ = ["FRAME_SECONDS", "FrameClock", "Playback", "Sound", "UnsupportedCodecError"]

log = logging.getLogger(__name__)

FRAME_SECONDS = 0.020
# Past this much lateness the clock stops catching up: a loop that stalled for a second
# must not then burst fifty frames into every call.
_MAX_LAG = 0.1


def can_encode(encoding: str, clock_rate: int) -> bool:
    return supported(encoding, clock_rate)


class Sound:
    """8 kHz mono audio cut into 20 ms frames, encoded per codec on first use."""

    def __init__(self, name: str, pcm: g711.Pcm, rate: int = 8000) -> None:
        if rate != 8000:
            raise ValueError("sounds are kept at 8 kHz")
        self.name = name
        size = round(rate * FRAME_SECONDS)
        whole = len(pcm) // size * size
        self._frames_pcm = np.asarray(pcm[:whole], dtype=np.int16).reshape(-1, size)
        self.samples_per_frame = size
        self._encoded: dict[tuple[str, int], list[bytes]] = {}

    def __len__(self) -> int:
        return len(self._frames_pcm)

    def frames(self, encoding: str, clock_rate: int) -> list[bytes]:
        """The sound's payloads in a codec, encoded as one stream (G.722 and Opus carry
        state from frame to frame). Raises ``UnsupportedCodecError``."""
        key = (encoding.upper(), clock_rate)
        frames = self._encoded.get(key)
        if frames is None:
            # Opus is the only codec said to have 2 channels (RFC 7587); we send mono.
            encoder = encoder_for(encoding, clock_rate)
            frames = self._encoded[key] = [encoder.encode(frame) for frame in self._frames_pcm]
        return frames


class Listener(Protocol):
    def on_tick(self, tick: int) -> None: ...


class FrameClock:
    """Calls every listener once per 20 ms, in step with the wall clock; runs only while
    someone listens."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0.0
        self.ticks = 0

    def __len__(self) -> int:
        return len(self._listeners)

    def add(self, listener: Listener) -> None:
        self._listeners.add(listener)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._next = loop.time() + FRAME_SECONDS
            self._timer = loop.call_at(self._next, self._tick)

    def remove(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        if not self._listeners and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self.ticks += 1
        for listener in list(self._listeners):
            try:
                listener.on_tick(self.ticks)
            except Exception:
                log.exception("a sound listener failed; it is removed")
                self._listeners.discard(listener)
        if not self._listeners:
            self._timer = None
            return
        self._next += FRAME_SECONDS
        now = loop.time()
        if now - self._next > _MAX_LAG:
            self._next = now + FRAME_SECONDS
        self._timer = loop.call_at(self._next, self._tick)


class Playback:
    """One sound streamed as RTP to one party: its own SSRC, sequence and timestamps.

    Looped, it plays the clock's current frame (every listener hears the same moment);
    once, it plays from the start to the end and then calls ``then``.
    """

    def __init__(
        self,
        sound: Sound,
        encoding: str,
        clock_rate: int,
        payload_type: int,
        send: Callable[[bytes], None],
        *,
        loop: bool = True,
        then: Callable[[], None] | None = None,
    ) -> None:
        self._frames = sound.frames(encoding, clock_rate)
        # RTP timestamp units per frame: the codec's clock, not the sound's 8 kHz.
        self._samples = round(clock_rate * FRAME_SECONDS)
        self._sender = RtpSender(payload_type)
        self._send = send
        self._loop = loop
        self._then = then
        self._played = 0

    @property
    def finished(self) -> bool:
        return not self._loop and self._played >= len(self._frames)

    def on_tick(self, tick: int) -> None:
        if self.finished:
            return
        index = tick % len(self._frames) if self._loop else self._played
        # The marker bit starts a talkspurt (RFC 3551 4.1): the receiver resyncs its buffer.
        self._send(self._sender.packet(self._frames[index], self._samples, marker=not self._played))
        self._played += 1
        if self.finished and self._then is not None:
            self._then()
