"""Recording from the relay: parties' RTP, tapped from their relay sides, buffered,
decoded (inbound.py) and written on the 20 ms clock, one channel per party: a call as
one stereo file (party A left, party B right), a voicemail message as a mono one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from nuage.media.g711 import Pcm
from nuage.media.inbound import InboundAudio
from nuage.media.player import FrameClock
from nuage.media.recorder import WavRecorder
from nuage.media.sdp import RtpMap

log = logging.getLogger(__name__)

_MAX_CATCH_UP = 250  # frames (5 s) written at most for one tick after a stall
# A frame louder than this (RMS, about -40 dBFS) is sound, not line noise.
_SOUND_RMS = 330.0


class Tappable(Protocol):
    """A relay side: it can hand out copies of the RTP its party sends."""

    def add_listener(self, listener: Callable[[bytes], None]) -> None: ...

    def remove_listener(self, listener: Callable[[bytes], None]) -> None: ...


class CallRecording:
    """Taps relay sides and writes what their parties say to ``path``.

    ``sources`` are, per channel, a side and the codecs its party sends, by payload type.
    ``on_limit`` is called when the recorder stops by itself (its maximum length, a full
    disk); ``stop`` must still be awaited then. With ``watch_sound``, ``last_sound_at``
    follows when a party was last heard (an RMS per frame: only voicemail needs it, call
    recordings do without).
    """

    def __init__(
        self,
        path: Path,
        clock: FrameClock,
        *sources: tuple[Tappable, Mapping[int, RtpMap]],
        max_seconds: float,
        on_limit: Callable[[], None],
        watch_sound: bool = False,
    ) -> None:
        self.path = path
        self._watch_sound = watch_sound
        self._clock = clock
        self._recorder = WavRecorder(path, channels=len(sources), max_seconds=max_seconds)
        self._taps = [(side, InboundAudio(codecs)) for side, codecs in sources]
        self._on_limit = on_limit
        self._loop = asyncio.get_running_loop()
        self.started_at = self._loop.time()
        self._last_tick: int | None = None
        self._stopped = False
        # When a party was last heard (loop time): voicemail ends a silent message.
        self.last_sound_at = self.started_at
        for side, inbound in self._taps:
            side.add_listener(inbound.packet)
        clock.add(self)

    @property
    def seconds(self) -> float:
        return self._recorder.seconds

    @property
    def limit_reached(self) -> bool:
        return self._recorder.limit_reached

    def on_tick(self, tick: int) -> None:
        if self._stopped:
            return
        now = self._loop.time()
        # Ticks the clock skipped (a starved process) still take their place in the file,
        # from what the jitter buffers hold by now: the recording keeps the call's length.
        frames = 1 if self._last_tick is None else min(tick - self._last_tick, _MAX_CATCH_UP)
        self._last_tick = tick
        for _ in range(max(frames, 1)):
            heard = [inbound.frame(now) for _, inbound in self._taps]
            if self._watch_sound and any(frame is not None and _loud(frame) for frame in heard):
                self.last_sound_at = now
            if not self._recorder.write(*heard):
                if self._recorder.error is not None:
                    log.error("recording %s stopped: %s", self.path, self._recorder.error)
                self._clock.remove(self)
                self._stopped = True
                self._on_limit()
                return

    async def stop(self) -> None:
        """Stop listening and make the file durable (fsynced, with its directory)."""
        for side, inbound in self._taps:
            side.remove_listener(inbound.packet)
        self._clock.remove(self)
        self._stopped = True
        await self._recorder.close()


def _loud(frame: Pcm) -> bool:
    return float(np.sqrt(np.mean(np.square(frame, dtype=np.float64)))) > _SOUND_RMS
