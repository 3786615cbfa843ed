"""The caller's side of a call the server placed itself (click-to-call): the server rang
the user's device first, the device answered, and the call then goes on as if the device
had dialled the target.

``Dialling`` is the call while the user's devices ring: no call of the engine's yet, but
a live call to the API already (listed, published, cancellable), under the id the call
keeps: the devices' Call-ID, which the call reads from the answering device's dialog.

``OriginatedInvite`` stands where the device's INVITE transaction stands in a call the
device placed: the call reads the "request" (the device's SDP, its identity, the number
dialled) and answers it. But the device's dialog exists already, confirmed and
acknowledged, so the answers are not sent as such: a 2xx just means the target answered
(the relay already points at the device), a failure hangs the device up. A BYE from the
device before then is the caller giving up, as a CANCEL would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any

from nuage.media.engine import MediaSession
from nuage.pbx.browser_ends import BrowserEnd
from nuage.pbx.dialing import Forking, Party
from nuage.sip.dialog import Dialog
from nuage.sip.endpoint import SipEndpoint
from nuage.sip.message import Request, Response, make_response
from nuage.sip.peer import Peer
from nuage.store.models import Company

log = logging.getLogger(__name__)

_BYE_TIMEOUT = 5.0


class Dialling:
    """A click-to-call while the server rings the user's devices."""

    def __init__(self, company: Company, user_id: int, target: str, forks: Forking) -> None:
        self.company = company
        self.user_id = user_id
        self.started_at = datetime.now(UTC)
        # As dialled: who it is, routing tells once a device answers.
        self.target = Party(target)
        self.forks = forks
        # The answering device's side, until the call it places takes the dialling over.
        self.invite: OriginatedInvite | None = None
        # The user gave up before a device answered (an answer may cross the CANCEL).
        self.cancelled = False

    @property
    def call_id(self) -> str:
        return self.forks.call_id

    def user_ids(self) -> set[int]:
        return {self.user_id}

    def hang_up(self) -> None:
        """The user gave up: the devices stop ringing, or the one that answered is hung
        up (the call it was placing then ends as cancelled)."""
        if self.invite is not None:
            self.invite.hang_up()
            return
        self.cancelled = True
        self.forks.cancel()


class OriginatedInvite:
    def __init__(
        self,
        endpoint: SipEndpoint,
        request: Request,
        dialog: Dialog,
        session: MediaSession,
        *,
        on_ringing: Callable[[], None],
        on_settled: Callable[[OriginatedInvite], None],
    ) -> None:
        assert dialog.peer is not None
        self._endpoint = endpoint
        # As the device would have sent it: its identity, the target, its SDP.
        self.request = request
        self.source: Peer = dialog.peer
        # The device's dialog (we are its UAC) and the relay its SDP already points at.
        self.dialog = dialog
        self.session = session
        self.cancelled = asyncio.Event()
        self._cancel_callbacks: list[Callable[[], None]] = []
        self._final: Response | None = None
        self._on_ringing = on_ringing
        self._ringing = False
        self._on_settled = on_settled
        self._tasks: set[asyncio.Task[None]] = set()
        # The relay side's WebRTC end when the device is a browser (it answered a WebRTC
        # offer with these ICE credentials): the call takes it over.
        self.browser: BrowserEnd | None = None

    @property
    def final_sent(self) -> bool:
        return self._final is not None

    def add_cancel_callback(self, callback: Callable[[], None]) -> None:
        if self.cancelled.is_set():
            callback()
        else:
            self._cancel_callbacks.append(callback)

    def mark_cancelled(self) -> None:
        """The device hung up before the target answered."""
        self.cancelled.set()
        callbacks, self._cancel_callbacks = self._cancel_callbacks, []
        for callback in callbacks:
            callback()

    def hang_up(self) -> None:
        """The user hung up (through the API) before the target answered: the call ends
        as if the device had hung up, and the device is hung up."""
        if self._final is not None or self.cancelled.is_set():
            return
        self.mark_cancelled()
        self._spawn(self._hang_up_device())

    def respond(
        self,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        to_tag: str | None = None,
    ) -> Response:
        response = make_response(self.request, status, reason)
        response.headers.set(
            "To", f"{response.headers.get('To')};tag={to_tag or self.dialog.local_tag}"
        )
        for name, value in headers:
            response.headers.add(name, value)
        response.body = body
        if 180 <= status < 200 and not self._ringing and self._final is None:
            self._ringing = True
            self._on_ringing()
        if status < 200 or self._final is not None:
            return response
        self._final = response
        if self._ringing:
            # The ringing tone gives way to the callee (or to silence before the hang-up).
            self.session.a.relay()
        self._on_settled(self)
        if status >= 300 and not self.cancelled.is_set():
            log.info("click-to-call %s failed: %d %s", self.dialog.call_id, status, reason)
            self._spawn(self._hang_up_device())
        return response

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_ack(self) -> Request | None:
        """The device's "ACK": it answered our INVITE and we acknowledged it already."""
        return self.request

    async def _hang_up_device(self) -> None:
        with contextlib.suppress(Exception):
            bye = await self._endpoint.request(self.dialog.create_request("BYE"), self.source)
            async with asyncio.timeout(_BYE_TIMEOUT):
                await bye.final()
