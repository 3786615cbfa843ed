"""Call recording (F10): started and stopped by a party of the call, announced to both,
stopped by itself after five minutes, stored with the call record and owned by the user
who started it.

The file is made durable before its row is written (DESIGN.md): a row always points to a
complete recording, and a crash at worst leaves a file without a row.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.media.player import FrameClock
from nuage.media.recording import CallRecording
from nuage.store import repositories
from nuage.store.writer import BatchWriter

if TYPE_CHECKING:
    from nuage.pbx.calls import Call
    from nuage.pbx.dialing import Party

log = logging.getLogger(__name__)

MAX_SECONDS = 300.0


@dataclass(slots=True)
class _Active:
    recording: CallRecording
    owner: Party
    started_at: datetime
    relative_path: str


class RecordingService:
    def __init__(
        self,
        data_dir: Path,
        writer: BatchWriter,
        clock: FrameClock,
        *,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        self._data_dir = data_dir
        self._writer = writer
        self._clock = clock
        # Recordings stop by themselves at this length (F10: 5 minutes).
        self.max_seconds = max_seconds
        self._active: dict[Call, _Active] = {}
        self._tasks: set[asyncio.Task[bool]] = set()

    def is_recording(self, call: Call) -> bool:
        return call in self._active

    def since(self, call: Call) -> datetime | None:
        """When the call's recording started, if it is being recorded (it stops by
        itself ``max_seconds`` later)."""
        active = self._active.get(call)
        return None if active is None else active.started_at

    @property
    def active(self) -> int:
        return len(self._active)

    async def start(self, call: Call, owner: Party) -> str | None:
        """Start recording ``call`` for ``owner``; None, or why it cannot be done."""
        if call in self._active:
            return "already recording"
        sources = call.recording_sources()
        if sources is None:
            return "the call's codecs cannot be recorded"
        started_at = datetime.now(UTC)
        # Not named after the Call-ID: the caller chose it, and it may hold a "/".
        relative = Path(
            "recordings",
            str(call.company.id),
            f"{started_at:%Y%m%d-%H%M%S}-{uuid.uuid4().hex}.wav",
        )
        path = self._data_dir / relative
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        recording = CallRecording(
            path,
            self._clock,
            *sources,
            max_seconds=self.max_seconds,
            on_limit=lambda: self._spawn(self.stop(call, "limit")),
        )
        self._active[call] = _Active(recording, owner, started_at, str(relative))
        log.info("call %s: recording started by %s", call.call_id, owner.number)
        call.engine.changed(call, "recording")
        return None

    async def stop(self, call: Call, stopped_by: str) -> bool:
        """Stop ``call``'s recording, make it durable and register it; False when none."""
        active = self._active.pop(call, None)
        if active is None:
            return False
        call.engine.changed(call, "recording")
        await active.recording.stop()
        duration_ms = round(active.recording.seconds * 1000)
        log.info(
            "call %s: recording stopped (%s) after %.1f s",
            call.call_id,
            stopped_by,
            duration_ms / 1000,
        )
        record_id = await call.record_id()
        if record_id is None:
            log.error("call %s: recording %s kept without a call record", call.call_id, active)
            return True

        async def register(session: AsyncSession) -> None:
            await repositories.add_recording(
                session,
                company_id=call.company.id,
                call_record_id=record_id,
                owner_user_id=active.owner.user_id,
                path=active.relative_path,
                started_at=active.started_at,
                duration_ms=duration_ms,
                stopped_by=stopped_by,
            )

        # Counted as queued: the row is written before the record's closing, queued later.
        call.recordings_made += 1
        await self._writer.run(register)
        return True

    def _spawn(self, coroutine: Coroutine[Any, Any, bool]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
