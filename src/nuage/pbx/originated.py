"""The caller's side of a call the server placed itself (click-to-call): the server rang
the user's device first, the device answered, and the call then goes on as if the device
had dialled the target.

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
from collections.abc import Callable, Iterable

from nuage.media.engine import MediaSession
from nuage.sip.dialog import Dialog
from nuage.sip.endpoint import SipEndpoint
from nuage.sip.message import Request, Response, make_response
from nuage.sip.peer import Peer

log = logging.getLogger(__name__)

_BYE_TIMEOUT = 5.0


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
            task = asyncio.get_running_loop().create_task(self._hang_up_device())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return response

    async def wait_ack(self) -> Request | None:
        """The device's "ACK": it answered our INVITE and we acknowledged it already."""
        return self.request

    async def _hang_up_device(self) -> None:
        with contextlib.suppress(Exception):
            bye = await self._endpoint.request(self.dialog.create_request("BYE"), self.source)
            await asyncio.wait_for(bye.final(), _BYE_TIMEOUT)
