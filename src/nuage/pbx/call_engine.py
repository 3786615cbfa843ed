"""The call engine: every live call, and the way in-dialog requests find theirs.

Each call (calls.py) runs as its own task from its INVITE to its last BYE; the engine
keeps them by dialog, sheds load when too many are being set up, counts each company's
external calls, and hangs up the forks that answered too late. It also keeps the
click-to-calls still ringing their user's devices (originated.py), which are calls to
the API before they are the engine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING

from nuage.media.engine import MediaEngine
from nuage.pbx.calls import (
    BYE_TIMEOUT,
    RETRY_AFTER,
    Application,
    Call,
    CallerTransaction,
    Fallback,
    Leg,
    TransferResolver,
)
from nuage.pbx.dialing import Destination, Party
from nuage.pbx.originated import Dialling
from nuage.pbx.records import CallRecorder
from nuage.sip.dialog import Dialog
from nuage.sip.endpoint import ClientTransactionHandle, ServerTransactionHandle, SipEndpoint
from nuage.sip.message import URI, Request, Response
from nuage.sip.peer import Peer
from nuage.store.models import Company

if TYPE_CHECKING:
    from nuage.pbx.recordings import RecordingService

log = logging.getLogger(__name__)

# Calls ringing or being answered at once. Past it the server is behind (or flooded):
# new calls get 503 with Retry-After, which costs next to nothing, rather than joining a
# backlog whose retransmissions and timers only make it fall further behind.
MAX_CALLS_IN_SETUP = 500

# Told of each change of a live call: (the call, what changed). The changes: "created",
# "answered", "held", "resumed", "transferring" (a blind transfer's target rings),
# "transferred", "transfer_failed", "conference", "recording", "ended". A dialling is
# "created", then "ended" unless a call takes it over (the call is then "created" under
# the same id).
CallObserver = Callable[[Call | Dialling, str], None]


class CallEngine:
    """Runs every live call and routes in-dialog requests to them."""

    def __init__(
        self,
        media: MediaEngine,
        recorder: CallRecorder,
        *,
        ring_timeout: float,
        media_timeout: float = 0.0,
    ):
        self.media = media
        self.recorder = recorder
        self.ring_timeout = ring_timeout
        self.media_timeout = media_timeout
        self._endpoint: SipEndpoint | None = None
        self._legs: dict[tuple[str, str], tuple[Call, Leg]] = {}
        self._calls: set[Call] = set()
        # The same calls by company: whatever asks about a user's calls (presence, the
        # API, BLF) looks at their company's, not at every tenant's.
        self._calls_by_company: defaultdict[int, set[Call]] = defaultdict(set)
        # Calls from their INVITE to their answer (or failure), for load shedding.
        self._setting_up: set[Call] = set()
        self.external_calls: Counter[int] = Counter()
        # Set by the PBX service: routing knows where a transfer target is.
        self.transfer_targets: TransferResolver | None = None
        self.recordings: RecordingService | None = None
        self._releases: set[asyncio.Task[None]] = set()
        self._observers: list[CallObserver] = []
        self._diallings: dict[str, Dialling] = {}

    def add_observer(self, observer: CallObserver) -> None:
        self._observers.append(observer)

    def changed(self, call: Call | Dialling, change: str) -> None:
        for observer in self._observers:
            try:
                observer(call, change)
            except Exception:
                log.exception("call observer failed on %s of %s", change, call.call_id)

    def attach(self, endpoint: SipEndpoint) -> None:
        self._endpoint = endpoint

    @property
    def endpoint(self) -> SipEndpoint:
        assert self._endpoint is not None, "CallEngine.attach() first"
        return self._endpoint

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def live_calls(self) -> list[Call]:
        return list(self._calls)

    def calls_of_company(self, company_id: int) -> list[Call]:
        return list(self._calls_by_company.get(company_id, ()))

    def diallings(self) -> list[Dialling]:
        return list(self._diallings.values())

    def dialling_started(self, dialling: Dialling) -> None:
        self._diallings[dialling.call_id] = dialling
        self.changed(dialling, "created")

    def dialling_over(self, dialling: Dialling) -> None:
        """The dialling ends, unless a call took it over."""
        if self._diallings.get(dialling.call_id) is dialling:
            del self._diallings[dialling.call_id]
            self.changed(dialling, "ended")

    @property
    def calls_on_hold(self) -> int:
        return sum(1 for call in self._calls if call.on_hold)

    def contact_for(self, transport: str) -> str:
        host, port = self.endpoint.transport.sent_by(transport)
        host = f"[{host}]" if ":" in host else host
        # RFC 7118 section 7: the URI parameter is "ws" for WebSocket, secure or not.
        name = "ws" if transport == "wss" else transport
        suffix = "" if transport == "udp" else f";transport={name}"
        return f"<sip:nuage@{host}:{port}{suffix}>"

    def register_leg(self, call: Call, leg: Leg) -> None:
        self._legs[(leg.dialog.call_id, leg.dialog.local_tag)] = (call, leg)

    def find_dialog(self, call_id: str, tag: str, other_tag: str) -> tuple[Call, Leg] | None:
        """The call and leg of a dialog named by its Call-ID and its two tags, in either
        order (a Replaces header gives them from its sender's side)."""
        for ours, theirs in ((tag, other_tag), (other_tag, tag)):
            found = self._legs.get((call_id, ours))
            if found is not None and found[1].dialog.remote_tag == theirs:
                return found
        return None

    def set_up_over(self, call: Call) -> None:
        self._setting_up.discard(call)

    def forget(self, call: Call) -> None:
        self._calls.discard(call)
        company_calls = self._calls_by_company.get(call.company.id)
        if company_calls is not None:
            company_calls.discard(call)
            if not company_calls:
                del self._calls_by_company[call.company.id]
        for leg in call.all_legs():
            key = (leg.dialog.call_id, leg.dialog.local_tag)
            # A leg handed over to another call (attended transfer) is that call's now.
            found = self._legs.get(key)
            if found is not None and found[0] is call:
                del self._legs[key]

    async def place(
        self,
        tx: CallerTransaction,
        company: Company,
        caller: Party,
        callee: Party,
        destinations: list[Destination] | Application,
        *,
        direction: str,
        shown_caller: Party | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        """Run a call from the INVITE in ``tx`` to ``destinations``, or answered here and
        handed to an application, until it ends; ``shown_caller`` is who the callee sees
        calling when not ``caller``; ``fallback`` takes the call if the callee cannot."""
        if len(self._setting_up) >= MAX_CALLS_IN_SETUP:
            log.warning("too many calls in set-up: call %s refused", tx.request.call_id)
            tx.respond(503, "Too many calls in set-up", headers=[RETRY_AFTER])
            return
        call = Call(
            self, tx, company, caller, callee, direction=direction, shown_caller=shown_caller
        )
        call.fallback = fallback
        dialling = self._diallings.get(call.call_id)
        if dialling is not None and dialling.invite is tx:
            # The click-to-call goes on as this call, under its id: no end in between.
            del self._diallings[call.call_id]
        self._calls.add(call)
        self._calls_by_company[company.id].add(call)
        self._setting_up.add(call)
        if direction == "outbound":
            call.count_external()
        self.changed(call, "created")
        try:
            await call.run(destinations)
        finally:
            self.set_up_over(call)
            self.external_calls[company.id] -= call.external_legs
            self.forget(call)
            self.changed(call, "ended")
            call.dismantle()

    async def handle_in_dialog(self, tx: ServerTransactionHandle) -> bool:
        """Pass an in-dialog request to its call; False when no call has that dialog."""
        request = tx.request
        key = (request.call_id, request.to.tag or "")
        found = self._legs.get(key)
        if found is None:
            return False
        call, leg = found
        await call.on_request(leg, tx)
        return True

    def handle_stray_2xx(self, response: Response, peer: Peer) -> None:
        """A 2xx from a fork that lost the race: acknowledge it and hang it up at once."""
        if response.cseq.method != "INVITE":
            return
        found = self._legs.get((response.call_id, response.from_.tag or ""))
        if found is not None and found[1].dialog.remote_tag == response.to.tag:
            # The winner retransmits its 2xx: our ACK is on its way (late offer) or, once
            # sent, the endpoint answers the retransmissions with it.
            return
        self._release(self._release_fork(response, peer))

    def release_if_answered(self, handle: ClientTransactionHandle) -> None:
        """A fork the call no longer wants (cancelled, lost the race, rang too long): if it
        answers anyway, even with a 2xx sent once that crossed our CANCEL, hang it up."""
        self._release(self._release_answered(handle))

    def _release(self, coroutine: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        # Keep a reference: the loop only holds tasks weakly.
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release_answered(self, handle: ClientTransactionHandle) -> None:
        # Bounded: a cancelled INVITE gets its final within 64*T1 (Timer B or the CANCEL's).
        final = await handle.final()
        if 200 <= final.status < 300:
            await self._release_fork(final, handle.peer)

    async def _release_fork(self, response: Response, peer: Peer) -> None:
        with contextlib.suppress(Exception):
            request = Request("INVITE", URI.parse("sip:invalid"), response.headers.copy())
            dialog = Dialog.from_uac(request, response, peer=peer)
            self.endpoint.send_ack(dialog.create_ack(response.cseq.seq), peer)
            bye = await self.endpoint.request(dialog.create_request("BYE"), peer)
            async with asyncio.timeout(BYE_TIMEOUT):
                await bye.final()
