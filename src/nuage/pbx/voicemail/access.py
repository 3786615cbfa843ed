"""Listening to one's voicemail from a phone (issue 5): a user dials the access code
(*98) from their own phone. If their box has a PIN, they key it then '#' (three tries).
They hear how many new messages they have, then their messages, new ones first; after
each, the menu: 1 listen again, 2 save, 3 delete, 4 next message, 5 record the greeting,
'#' hang up. A key during a message or a prompt cuts it short. A message played to its
end is heard. Once no message is left they may still record their greeting, then hear
goodbye.

Hearing and deleting go through the ``Voicemail`` service, so that its listeners (the
event stream, message-waiting lamps) are told as when the web app does it. A new
greeting is recorded next to the current one, made durable, renamed over it, and only
then written in the box's row: a call that ends half-way leaves the old one whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from nuage.media.engine import MediaEngine
from nuage.media.player import Sound
from nuage.media.prompts import NEW_COUNT_PROMPTS, read_wav
from nuage.media.recording import CallRecording
from nuage.media.sdp import RtpMap
from nuage.pbx.calls import Call, Leg
from nuage.pbx.dialing import Party
from nuage.pbx.routing import VOICEMAIL_ACCESS_CODE
from nuage.pbx.voicemail.store import BoxKey, BoxSettings
from nuage.store.models import Company, User, VoicemailMessage

if TYPE_CHECKING:
    # service.py makes this application: a runtime import would be circular.
    from nuage.pbx.voicemail.service import Voicemail

log = logging.getLogger(__name__)

PIN_ATTEMPTS = 3
# A PIN is at most 8 digits (the plan's rule); keys past this many are not kept.
MAX_PIN_KEYS = 16
# Seconds to wait for the next key after a prompt, or between the keys of a PIN.
KEY_TIMEOUT = 6.0
# The menu after a message is said this many times without a key, then goodbye.
MENU_ATTEMPTS = 3
GREETING_MAX_SECONDS = 60
# A shorter greeting is dropped: the caller hung up or keyed '#' before speaking.
MIN_GREETING_SECONDS = 1.0

_HASHER = PasswordHasher()


class VoicemailAccess:
    """``owner`` listening to their own box from one of their phones."""

    def __init__(
        self,
        company: Company,
        owner: User,
        settings: BoxSettings,
        voicemail: Voicemail,
        media: MediaEngine,
    ) -> None:
        self._company = company
        self._owner = owner
        self._box = BoxKey.of(owner)
        self._settings = settings
        self._voicemail = voicemail
        self._media = media
        self._keys: asyncio.Queue[str] = asyncio.Queue()
        # Messages known heard: one already heard is not marked (and announced) again.
        self._heard: set[int] = set()

    @property
    def party(self) -> Party:
        return Party(VOICEMAIL_ACCESS_CODE, "Voicemail")

    @property
    def outcome(self) -> str:
        return "answered"

    def on_digit(self, digit: str) -> None:
        self._keys.put_nowait(digit)

    async def run(self, call: Call, caller: Leg) -> None:
        codec = call.playable_codec(caller)
        if codec is not None:
            line = _Line(call, caller, codec, self._keys)
            if await self._unlocked(line):
                await self._listen(line)
            if not call.over.is_set():
                await line.say(self._prompt("goodbye"))
        if not call.over.is_set():
            assert caller.other is not None
            await call.hang_up(caller.other)

    async def _unlocked(self, line: _Line) -> bool:
        """Whether the caller may listen: no PIN, or they keyed it right."""
        pin_hash = self._settings.pin_hash
        if pin_hash is None:
            return True
        for _ in range(PIN_ATTEMPTS):
            key = await line.ask(self._prompt("voicemail_pin"))
            keyed = ""
            while key is not None and key != "#" and len(keyed) < MAX_PIN_KEYS:
                keyed += key
                key = await line.next_key(KEY_TIMEOUT)
            if line.over:
                return False
            # argon2 takes tens of milliseconds of CPU on purpose: off the event loop.
            if await asyncio.to_thread(pin_matches, pin_hash, keyed):
                return True
            log.info("voicemail of %s: wrong PIN keyed", self._owner.extension)
            await line.say(self._prompt("voicemail_pin_wrong"))
        return False

    async def _listen(self, line: _Line) -> None:
        """The count of new messages, then each message and its menu."""
        messages = await self._voicemail.store.messages(self._box)
        self._heard = {message.id for message in messages if message.heard_at is not None}
        await line.say(self._prompt(new_messages_prompt(len(messages) - len(self._heard))))
        index, play = 0, True
        while not line.over:
            if index == len(messages):
                if await line.ask(self._prompt("voicemail_end_menu")) == "5":
                    await self._record_greeting(line)
                    continue
                return
            message = messages[index]
            key = await self._play_message(line, message) if play else None
            if key is None:
                key = await self._menu(line)
            if key is None or key == "#":
                return
            if key == "2":
                await self._mark_heard(message)
            elif key == "3":
                await self._voicemail.delete(self._box, message.id)
            elif key == "5":
                await self._record_greeting(line)
            elif key not in ("1", "4"):
                await line.say(self._prompt("invalid_choice"))
            if key in ("2", "3", "4"):
                index += 1
            # 1 plays the message again; after a greeting or a wrong key, its menu again.
            play = key in ("1", "2", "3", "4")

    async def _menu(self, line: _Line) -> str | None:
        """The key pressed at the menu; None if none came after its attempts."""
        for _ in range(MENU_ATTEMPTS):
            key = await line.ask(self._prompt("voicemail_menu"))
            if key is not None or line.over:
                return key
        return None

    async def _play_message(self, line: _Line, message: VoicemailMessage) -> str | None:
        """Play ``message``; the key that cut it short, None once played to its end (it
        is then heard)."""
        try:
            pcm = await asyncio.to_thread(read_wav, self._voicemail.store.data_dir / message.path)
        except (OSError, ValueError) as exc:
            # Deleted from the web app meanwhile, or damaged: its menu still lets the
            # caller move on or delete it.
            log.warning("voicemail message %d unplayable: %s", message.id, exc)
            return None
        key = await line.ask(Sound(f"voicemail message {message.id}", pcm), wait=False)
        if key is None and not line.over:
            await self._mark_heard(message)
        return key

    async def _mark_heard(self, message: VoicemailMessage) -> None:
        if message.id not in self._heard:
            self._heard.add(message.id)
            await self._voicemail.mark_heard(self._box, message.id)

    async def _record_greeting(self, line: _Line) -> None:
        """Record the caller until '#' (or the limit, or they hang up) as their greeting."""
        await line.say(self._prompt("voicemail_record_greeting"))
        await line.say(self._media.beep)
        source = line.call.source_of(line.caller)
        if line.over or source is None:
            return
        store = self._voicemail.store
        final = store.greeting_path(self._box)
        partial = final.with_name(f"{final.stem}.recording.wav")
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        limit = asyncio.Event()
        recording = CallRecording(
            partial,
            self._media.clock,
            source,
            max_seconds=GREETING_MAX_SECONDS,
            on_limit=limit.set,
        )
        line.drain()
        key: str | None = ""
        try:
            while key is not None and key != "#":
                key = await line.next_key(None, until=limit)
        finally:
            # The caller hanging up ends the greeting; a server stopping cancels this
            # task, and the greeting is still kept.
            kept = await asyncio.shield(self._keep_greeting(recording, partial))
        if kept and not line.over:
            await line.say(self._prompt("voicemail_greeting_saved"))

    async def _keep_greeting(self, recording: CallRecording, partial: Path) -> bool:
        await recording.stop()
        if recording.seconds < MIN_GREETING_SECONDS:
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            return False
        await self._voicemail.store.replace_greeting(self._box, partial)
        log.info(
            "voicemail of %s: new greeting of %.1f s", self._owner.extension, recording.seconds
        )
        return True

    def _prompt(self, name: str) -> Sound:
        return self._media.prompts.sound(name, self._company.language)


class _Line:
    """The caller's end of the call: what they hear, the keys they press."""

    def __init__(self, call: Call, caller: Leg, codec: RtpMap, keys: asyncio.Queue[str]) -> None:
        self.call = call
        self.caller = caller
        self._codec = codec
        self._keys = keys

    @property
    def over(self) -> bool:
        return self.call.over.is_set()

    async def say(self, sound: Sound) -> None:
        """Play ``sound`` to its end (or the call's)."""
        await self._play(sound, stop_on_key=False)

    async def ask(self, sound: Sound, *, wait: bool = True) -> str | None:
        """Play ``sound``, which a key cuts short, then (if ``wait``) wait for a key: the
        key, None if none came or the call ended. Keys pressed before are forgotten."""
        self.drain()
        key = await self._play(sound, stop_on_key=True)
        if key is not None or not wait:
            return key
        return await self.next_key(KEY_TIMEOUT)

    async def next_key(
        self, within: float | None, *, until: asyncio.Event | None = None
    ) -> str | None:
        """The next key; None if none came ``within`` seconds (None: no limit), once
        ``until`` is set, or once the call ended."""
        ends: list[Awaitable[object]] = [self.call.over.wait()]
        if until is not None:
            ends.append(until.wait())
        return await self._first_key(ends, within)

    def drain(self) -> None:
        while not self._keys.empty():
            self._keys.get_nowait()

    async def _play(self, sound: Sound, *, stop_on_key: bool) -> str | None:
        """Play ``sound``; the key that stopped it, if ``stop_on_key`` and one did."""
        played = asyncio.Event()
        self.caller.media.play(sound, self._codec, loop=False, then=played.set)
        try:
            ends = [played.wait(), self.call.over.wait()]
            if stop_on_key:
                return await self._first_key(ends, None)
            await _first(ends, None)
            return None
        finally:
            self.caller.media.silence()

    async def _first_key(
        self, ends: Sequence[Awaitable[object]], within: float | None
    ) -> str | None:
        key = asyncio.ensure_future(self._keys.get())
        await _first([key, *ends], within)
        if key.done() and not key.cancelled():
            return key.result()
        return None


async def _first(waits: Sequence[Awaitable[object]], within: float | None) -> None:
    """Return once one of ``waits`` is done, or after ``within`` seconds; cancel the
    others."""
    futures = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(futures, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()


def new_messages_prompt(new: int) -> str:
    if new == 0:
        return "voicemail_no_messages"
    if new <= NEW_COUNT_PROMPTS:
        return f"voicemail_new_{new}"
    return "voicemail_new_many"


def pin_matches(pin_hash: str, keyed: str) -> bool:
    try:
        return _HASHER.verify(pin_hash, keyed)
    except (VerificationError, InvalidHashError):
        return False
