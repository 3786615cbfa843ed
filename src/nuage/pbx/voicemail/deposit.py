"""Leaving a message (F17): the caller hears the box's greeting (the owner's own, or the
default one in the company's language), a beep, then is recorded until they hang up,
press '#', stay silent too long, or reach the box's limit. A key during the greeting
skips to the beep. A message shorter than a second is discarded (a caller who hung up
on the greeting); any other is kept: its file made durable, then its row written, then
``on_message`` told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from nuage.media.engine import MediaEngine
from nuage.media.player import Sound
from nuage.media.prompts import read_wav
from nuage.media.recording import CallRecording
from nuage.media.sdp import RtpMap
from nuage.pbx.calls import Call, Leg
from nuage.pbx.dialing import Party
from nuage.pbx.voicemail.store import BoxKey, BoxSettings, VoicemailStore
from nuage.store.models import Company, Group, User, VoicemailMessage

log = logging.getLogger(__name__)

# Shorter messages are dropped: nothing was said.
MIN_MESSAGE_SECONDS = 1.0
# A caller silent this long has left (or forgot to hang up): the message ends.
SILENCE_SECONDS = 10.0
_WATCH_PERIOD = 0.2

MessageListener = Callable[[VoicemailMessage], None]


class VoicemailDeposit:
    """One caller leaving a message in ``owner``'s box (a user's or a group's)."""

    def __init__(
        self,
        company: Company,
        owner: User | Group,
        settings: BoxSettings,
        store: VoicemailStore,
        media: MediaEngine,
        *,
        on_message: MessageListener,
    ) -> None:
        self._company = company
        self._owner = owner
        self._box = BoxKey.of(owner)
        self._settings = settings
        self._store = store
        self._media = media
        self._on_message = on_message
        self._keys: asyncio.Queue[str] = asyncio.Queue()

    @property
    def party(self) -> Party:
        return Party(self._owner.extension, self._owner.name)

    @property
    def outcome(self) -> str:
        return "voicemail"

    def on_digit(self, digit: str) -> None:
        self._keys.put_nowait(digit)

    async def run(self, call: Call, caller: Leg) -> None:
        codec = call.playable_codec(caller)
        if codec is not None:
            greeting = await self._greeting()
            if await self._play(call, caller, greeting, codec, stop_on_key=True):
                await self._play(call, caller, self._media.beep, codec, stop_on_key=False)
        caller.media.silence()
        if call.over.is_set():
            return
        source = call.source_of(caller)
        if source is None:
            log.warning("call %s: the caller's codec cannot be recorded", call.call_id)
            assert caller.other is not None
            await call.hang_up(caller.other)
            return
        path = self._store.new_message_path(self._company.id)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        limit = asyncio.Event()
        recording = CallRecording(
            path,
            self._media.clock,
            source,
            max_seconds=self._settings.max_seconds,
            on_limit=limit.set,
            watch_sound=True,
        )
        ended_by = "hangup"
        try:
            ended_by = await self._until_done(call, recording, limit)
        finally:
            # The caller hanging up cancels nothing, but a server stopping does: the
            # message is kept either way.
            await asyncio.shield(self._keep(call, recording, path, ended_by))
        if not call.over.is_set():
            if codec is not None:
                goodbye = self._media.prompts.sound("goodbye", self._company.language)
                await self._play(call, caller, goodbye, codec, stop_on_key=False)
            assert caller.other is not None
            await call.hang_up(caller.other)

    async def _greeting(self) -> Sound:
        own = self._settings.greeting_path
        if own is not None:
            try:
                pcm = await asyncio.to_thread(read_wav, self._store.data_dir / own)
                return Sound(f"greeting of {self._owner.extension}", pcm)
            except (OSError, ValueError) as exc:
                log.warning("greeting of %s unusable, default used: %s", self._owner.extension, exc)
        return self._media.prompts.sound("voicemail_greeting", self._company.language)

    async def _play(
        self, call: Call, caller: Leg, sound: Sound, codec: RtpMap, *, stop_on_key: bool
    ) -> bool:
        """Play ``sound`` to the caller; False when the call ended meanwhile. A key
        stops it when ``stop_on_key`` (the key is then consumed)."""
        played = asyncio.Event()
        caller.media.play(sound, codec, loop=False, then=played.set)
        waits: set[asyncio.Future[object]] = {
            asyncio.ensure_future(played.wait()),
            asyncio.ensure_future(call.over.wait()),
        }
        if stop_on_key:
            waits.add(asyncio.ensure_future(self._keys.get()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return not call.over.is_set()

    async def _until_done(self, call: Call, recording: CallRecording, limit: asyncio.Event) -> str:
        """Why the message ended: "hangup", "key", "limit" or "silence"."""
        loop = asyncio.get_running_loop()
        while True:
            if call.over.is_set():
                return "hangup"
            if limit.is_set():
                return "limit"
            while not self._keys.empty():
                if self._keys.get_nowait() == "#":
                    return "key"
            if loop.time() - recording.last_sound_at > SILENCE_SECONDS:
                return "silence"
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_WATCH_PERIOD):
                    await call.over.wait()

    async def _keep(self, call: Call, recording: CallRecording, path: Path, ended_by: str) -> None:
        await recording.stop()
        seconds = recording.seconds
        if seconds < MIN_MESSAGE_SECONDS:
            log.info("call %s: message of %.1f s discarded", call.call_id, seconds)
            await asyncio.to_thread(path.unlink, missing_ok=True)
            return
        caller = call.caller
        message = await self._store.add_message(
            self._box,
            caller=caller.number,
            caller_name=caller.name,
            path=path,
            duration_ms=round(seconds * 1000),
        )
        log.info(
            "call %s: message %d of %.1f s left for %s (%s)",
            call.call_id,
            message.id,
            seconds,
            self._owner.extension,
            ended_by,
        )
        self._on_message(message)
