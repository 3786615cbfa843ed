"""Sounds the server plays into calls (music on hold, later prompts), on one 20 ms clock.

A ``Sound`` is encoded once per codec, the first time a call needs it in that codec, and
its frames are shared by every call playing it. Looped sounds play like a radio: every
listener hears the frame of the current tick, so a thousand held calls cost a thousand
``sendto`` per tick and no encoding at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from nuage.media import g711
from nuage.media.codecs import UnsupportedCodecError, encoder_for, supported
from nuage.media.rtcp_sender import ReportSettings, RtcpReporter
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
    someone listens. ``reports`` says how the streams it drives (the server's own: sounds,
    conference mixes) are reported in RTCP.

    A clock more than ``_MAX_LAG`` behind (the process starved of CPU) skips the frames
    it missed instead of bursting them: the tick number given to listeners then jumps
    by as many, so that those that must account for every frame (a recording's length)
    can, and ``skipped`` counts them (``/healthz``: media_ticks_skipped)."""

    def __init__(self, reports: ReportSettings | None = None) -> None:
        self.reports = ReportSettings() if reports is None else reports
        self._listeners: set[Listener] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._next = 0.0
        self.ticks = 0
        self.skipped = 0

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
            missed = int((now - self._next) / FRAME_SECONDS)
            self.ticks += missed
            self.skipped += missed
            self._next += missed * FRAME_SECONDS
        self._timer = loop.call_at(self._next, self._tick)


def _ignore(packet: bytes) -> None:
    pass


class Playback:
    """One sound streamed as RTP to one party: its own SSRC, sequence and timestamps.

    Looped, it plays the clock's current frame (every listener hears the same moment);
    once, it plays from the start to the end and then calls ``then``.

    With ``send_rtcp``, the party also gets the stream's RTCP as ``reports`` say: sender
    reports while it plays, and a BYE once it ends (``stop``, or the end of a sound
    played once, just before ``then``).
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
        send_rtcp: Callable[[bytes], None] | None = None,
        reports: ReportSettings | None = None,
    ) -> None:
        self._frames = sound.frames(encoding, clock_rate)
        # RTP timestamp units per frame: the codec's clock, not the sound's 8 kHz.
        self._samples = round(clock_rate * FRAME_SECONDS)
        self._sender = RtpSender(payload_type)
        self._send = send
        self._loop = loop
        self._then = then
        self._played = 0
        self._send_rtcp = _ignore if send_rtcp is None else send_rtcp
        self._reporter: RtcpReporter | None = None
        if send_rtcp is not None:
            settings = ReportSettings() if reports is None else reports
            self._reporter = settings.reporter(self._sender.ssrc, clock_rate)

    @property
    def ssrc(self) -> int:
        return self._sender.ssrc

    @property
    def finished(self) -> bool:
        return not self._loop and self._played >= len(self._frames)

    def on_tick(self, tick: int) -> None:
        if self.finished:
            return
        index = tick % len(self._frames) if self._loop else self._played
        payload = self._frames[index]
        sender = self._sender
        timestamp = sender.timestamp
        # The marker bit starts a talkspurt (RFC 3551 4.1): the receiver resyncs its buffer.
        self._send(sender.packet(payload, self._samples, marker=not self._played))
        self._played += 1
        reporter = self._reporter
        if reporter is not None:
            report = reporter.sent(timestamp, len(payload), time.monotonic())
            if report is not None:
                self._send_rtcp(report)
        if self.finished:
            self.stop()
            if self._then is not None:
                self._then()

    def stop(self) -> None:
        """The stream ends: its party gets a BYE for its SSRC, once, if anything was sent
        and RTCP is on. Called by the owner once the playback is off the clock."""
        reporter = self._reporter
        if reporter is not None:
            self._reporter = None
            bye = reporter.bye(time.monotonic())
            if bye is not None:
                self._send_rtcp(bye)
