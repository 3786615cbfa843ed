"""IVR menus (F7): "press 1 for English, 2 for French". The server answers the caller,
plays the menu's prompt in its language and routes by the key pressed (RFC 4733 events
or SIP INFO, as the caller's phone sends them).

The call is an ordinary call whose other party is the menu (``calls.Application``): a
key that leads to a colleague blind-transfers the caller there (music while it rings,
the colleague in the menu's place once answered), a key that leads to another menu
carries on with that menu. No key, a wrong key or a colleague who does not answer
replays the prompt, up to the menu's attempts; then the fallback takes the call, or the
caller hears goodbye and the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nuage.media.prompts import Prompts
from nuage.pbx.calls import Call, Leg, TransferTarget
from nuage.pbx.dialing import Party
from nuage.pbx.routing import Refused
from nuage.store.models import IvrMenu

log = logging.getLogger(__name__)

MenuTarget = TransferTarget | IvrMenu | Refused
"""Where a key leads: a colleague's devices, another menu, or nowhere (and why)."""


class IvrApplication:
    """One caller going through a company's menus, from ``menu`` on."""

    def __init__(
        self,
        menu: IvrMenu,
        language: str,
        prompts: Prompts,
        resolve: Callable[[str], MenuTarget],
    ) -> None:
        self._menu = menu
        self._entry = menu
        self._language = language
        self._prompts = prompts
        self._resolve = resolve
        self._keys: asyncio.Queue[str] = asyncio.Queue()
        self._keyed = asyncio.Event()

    @property
    def party(self) -> Party:
        return Party(self._entry.extension, self._entry.name)

    @property
    def outcome(self) -> str:
        return "answered"

    def on_digit(self, digit: str) -> None:
        self._keys.put_nowait(digit)
        self._keyed.set()

    async def run(self, call: Call, caller: Leg) -> None:
        attempts = 0
        while attempts < self._menu.attempts:
            attempts += 1
            key = await self._ask(call, caller, self._menu.prompt)
            if key is None:
                continue
            target = self._resolve(self._menu.keys[key]) if key in self._menu.keys else None
            if target is None or isinstance(target, Refused):
                log.info(
                    "call %s: key %s leads nowhere in menu %s",
                    call.call_id,
                    key,
                    self._menu.extension,
                )
                await self._say(call, caller, "invalid_choice")
                continue
            if isinstance(target, IvrMenu):
                self._menu, attempts = target, 0
                continue
            if await self._transfer(call, caller, target):
                return
        await self._give_up(call, caller)

    async def _give_up(self, call: Call, caller: Leg) -> None:
        """Attempts are over: the fallback takes the call, else goodbye."""
        fallback = self._menu.fallback
        target = self._resolve(fallback) if fallback is not None else None
        if isinstance(target, TransferTarget) and await self._transfer(call, caller, target):
            return
        await self._say(call, caller, "goodbye")
        assert caller.other is not None
        await call.hang_up(caller.other)

    async def _transfer(self, call: Call, caller: Leg, target: TransferTarget) -> bool:
        """Whether ``target`` answered (the call is then theirs)."""
        assert caller.other is not None
        log.info(
            "call %s: menu %s connects the caller to %s",
            call.call_id,
            self._menu.extension,
            target.callee.number,
        )
        outcome = await call.transfer_to(caller.other, target).outcome
        return outcome == "answered"

    async def _ask(self, call: Call, caller: Leg, prompt: str) -> str | None:
        """Play ``prompt`` (a key stops it) and wait for a key until the menu's timeout."""
        self._drain()
        finished = await self._play(call, caller, prompt, stop_on_key=True)
        if not finished:
            return self._keys.get_nowait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._menu.timeout_seconds):
                return await self._keys.get()
        return None

    async def _say(self, call: Call, caller: Leg, prompt: str) -> None:
        await self._play(call, caller, prompt, stop_on_key=False)

    async def _play(self, call: Call, caller: Leg, prompt: str, *, stop_on_key: bool) -> bool:
        """Play a prompt to the caller; False when a key stopped it (the key is queued)."""
        codec = call.playable_codec(caller)
        if codec is None:
            return True
        language = self._menu.language or self._language
        played = asyncio.Event()
        caller.media.play(self._prompts.sound(prompt, language), codec, loop=False, then=played.set)
        try:
            if not stop_on_key:
                await played.wait()
                return True
            ended = asyncio.ensure_future(played.wait())
            keyed = asyncio.ensure_future(self._keyed.wait())
            finished, _ = await asyncio.wait({ended, keyed}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            keyed.cancel()
            return ended in finished
        finally:
            caller.media.silence()

    def _drain(self) -> None:
        """Forget keys pressed before the prompt (barge-in counts from its start)."""
        while not self._keys.empty():
            self._keys.get_nowait()
        self._keyed.clear()
