"""Recording a relayed call: both parties' RTP, tapped from the relay, buffered, decoded
(inbound.py) and written as one stereo file (party A left, party B right) on the 20 ms
clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from nuage.media.inbound import InboundAudio
from nuage.media.player import FrameClock
from nuage.media.recorder import StereoRecorder
from nuage.media.sdp import RtpMap

log = logging.getLogger(__name__)

_MAX_CATCH_UP = 250  # frames (5 s) written at most for one tick after a stall


class Tappable(Protocol):
    """A relay side: it can hand out copies of the RTP its party sends."""

    def add_listener(self, listener: Callable[[bytes], None]) -> None: ...

    def remove_listener(self, listener: Callable[[bytes], None]) -> None: ...


class CallRecording:
    """Taps two relay sides and writes what their parties say to ``path``.

    ``left`` and ``right`` are a side and the codecs its party sends, by payload type.
    ``on_limit`` is called when the recorder stops by itself (its maximum length, a full
    disk); ``stop`` must still be awaited then.
    """

    def __init__(
        self,
        path: Path,
        clock: FrameClock,
        left: tuple[Tappable, Mapping[int, RtpMap]],
        right: tuple[Tappable, Mapping[int, RtpMap]],
        *,
        max_seconds: float,
        on_limit: Callable[[], None],
    ) -> None:
        self.path = path
        self._clock = clock
        self._recorder = StereoRecorder(path, max_seconds=max_seconds)
        self._sides = (left[0], right[0])
        self._left = InboundAudio(left[1])
        self._right = InboundAudio(right[1])
        self._on_limit = on_limit
        self._loop = asyncio.get_running_loop()
        self.started_at = self._loop.time()
        self._last_tick: int | None = None
        self._stopped = False
        left[0].add_listener(self._left.packet)
        right[0].add_listener(self._right.packet)
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
            if not self._recorder.write(self._left.frame(now), self._right.frame(now)):
                if self._recorder.error is not None:
                    log.error("recording %s stopped: %s", self.path, self._recorder.error)
                self._clock.remove(self)
                self._stopped = True
                self._on_limit()
                return

    async def stop(self) -> None:
        """Stop listening and make the file durable (fsynced, with its directory)."""
        self._sides[0].remove_listener(self._left.packet)
        self._sides[1].remove_listener(self._right.packet)
        self._clock.remove(self)
        self._stopped = True
        await self._recorder.close()
