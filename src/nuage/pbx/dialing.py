"""Placing calls: who is calling, where the INVITEs go, and forking them to every
destination at once (the first to answer wins)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nuage.sip.dialog import Dialog
from nuage.sip.digest import authorization_for
from nuage.sip.endpoint import ClientTransactionHandle
from nuage.sip.message import URI, Address, Request, Response
from nuage.sip.peer import Peer
from nuage.store.models import Company, Trunk

if TYPE_CHECKING:
    from nuage.pbx.call_engine import CallEngine

# Browsers reach the server over SIP WebSocket only (RFC 7118): a device registered over
# it is a WebRTC endpoint, offered DTLS-SRTP.
BROWSER_TRANSPORTS = frozenset({"ws", "wss"})


def is_browser(peer: Peer) -> bool:
    return peer.transport in BROWSER_TRANSPORTS


ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER, REFER, SUBSCRIBE"


# Why the other devices of the callee stop ringing when one answered (RFC 3326): phones
# then show no missed call.
ANSWERED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'

# Names, in an INVITE to the web app, the call it belongs to in the REST API.
API_CALL_ID_HEADER = "X-Nuage-Call"


def new_call_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Party:
    """Who is on one end of a call, as shown to the other end."""

    number: str  # extension or E.164
    name: str = ""
    user_id: int | None = None


@dataclass(slots=True)
class Destination:
    """One place to send the B-leg INVITE: a registered device or the trunk."""

    uri: URI
    peer: Peer
    to: Address
    credentials: tuple[str, str] | None = None  # trunk (username, password)


@dataclass(frozen=True, slots=True)
class ForkOutcome:
    """How ringing ended: "answered", "cancelled", "timeout", "bad_sdp" (the winner's SDP
    was unusable) or "failed" (every destination refused; ``failures`` says how)."""

    kind: str
    failures: list[Response] = field(default_factory=list)


class Forking:
    """Rings every destination in parallel; the first to answer wins, the others are
    cancelled. Ends on answer, on all failing, on ``cancel()`` or on ring timeout.

    ``on_answer`` takes the winning 2xx and its dialog and says whether its SDP could be
    used; ``on_provisional`` gets the 1xx. Browsers among the destinations get
    ``browser_offer`` (WebRTC SDP) when given, and the call's id in the REST API
    (``api_call_id``, in an X-Nuage-Call header): the web app acts on its calls through
    the API.
    """

    def __init__(
        self,
        engine: CallEngine,
        company: Company,
        caller: Party,
        destinations: list[Destination],
        offer: bytes,
        *,
        on_answer: Callable[[Response, Dialog], bool],
        on_provisional: Callable[[Response], None] = lambda response: None,
        identity_header: bool = False,
        browser_offer: bytes | None = None,
        api_call_id: str = "",
        call_id: str | None = None,
    ) -> None:
        self.engine = engine
        self.company = company
        self.caller = caller
        self.destinations = destinations
        self.offer = offer
        # What browsers (WebRTC devices) are offered instead; None: the same offer.
        self.browser_offer = browser_offer
        self.api_call_id = api_call_id
        self._on_answer = on_answer
        self._on_provisional = on_provisional
        self._identity_header = identity_header
        self.call_id = call_id or new_call_id()
        self.from_tag = secrets.token_hex(6)
        self._cseq = itertools.count(1)
        self._handles: list[ClientTransactionHandle] = []
        self._winner: ClientTransactionHandle | None = None
        self._events: asyncio.Queue[tuple[str, Response | None, Destination | None]] = (
            asyncio.Queue()
        )

    def cancel(self) -> None:
        """Stop ringing (the caller hung up): ``run`` returns "cancelled"."""
        self._events.put_nowait(("cancel", None, None))

    def _invite(self, destination: Destination, cseq: int) -> Request:
        domain = self.company.domain
        caller = self.caller
        from_address = Address(
            URI("sip", caller.number, host=domain),
            caller.name or None,
            {"tag": self.from_tag},
        )
        request = Request("INVITE", destination.uri)
        headers = request.headers
        headers.add("Max-Forwards", "70")
        headers.add("From", str(from_address))
        headers.add("To", str(destination.to))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} INVITE")
        headers.add("Contact", self.engine.contact_for(destination.peer.transport))
        headers.add("Allow", ALLOW)
        offer = self.offer
        if is_browser(destination.peer):
            if self.browser_offer is not None:
                offer = self.browser_offer
            if self.api_call_id:
                headers.add(API_CALL_ID_HEADER, self.api_call_id)
        if offer:
            headers.add("Content-Type", "application/sdp")
        if self._identity_header:
            headers.add("P-Asserted-Identity", f"<sip:{caller.number}@{domain}>")
        request.body = offer
        return request

    async def run(self) -> ForkOutcome:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._ring(d)) for d in self.destinations]
        timer = loop.call_later(
            self.engine.ring_timeout, self._events.put_nowait, ("timeout", None, None)
        )
        failures: list[Response] = []
        try:
            while True:
                kind, response, destination = await self._events.get()
                if kind in ("cancel", "timeout"):
                    self._cancel_all()
                    return ForkOutcome("cancelled" if kind == "cancel" else "timeout")
                assert response is not None and destination is not None
                if response.status < 200:
                    self._on_provisional(response)
                elif response.status < 300:
                    if self._answered(response, destination):
                        return ForkOutcome("answered")
                    return ForkOutcome("bad_sdp")
                else:
                    failures.append(response)
                    if len(failures) == len(self.destinations):
                        return ForkOutcome("failed", failures)
        finally:
            timer.cancel()
            for task in tasks:
                if not task.done():
                    task.cancel()
            # Nobody reads the other forks' responses from here on, and a 2xx among them
            # may come only once (it crossed our CANCEL, or it is not retransmitted).
            for handle in self._handles:
                if handle is not self._winner:
                    self.engine.release_if_answered(handle)

    async def _ring(self, destination: Destination) -> None:
        request = self._invite(destination, next(self._cseq))
        handle = await self.engine.endpoint.request(request, destination.peer)
        self._handles.append(handle)
        async for response in handle:
            if response.status in (401, 407) and destination.credentials is not None:
                retry = self._with_credentials(request, response, destination.credentials)
                if retry is not None:
                    handle = await self.engine.endpoint.request(retry, destination.peer)
                    self._handles.append(handle)
                    async for second in handle:
                        self._events.put_nowait(("response", second, destination))
                    return
            self._events.put_nowait(("response", response, destination))

    def _with_credentials(
        self, request: Request, challenge: Response, credentials: tuple[str, str]
    ) -> Request | None:
        """The INVITE again with an Authorization answering the carrier's challenge."""
        header = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        username, password = credentials
        try:
            authorization = authorization_for(
                challenge.headers.values(header), "INVITE", str(request.uri), username, password
            )
        except ValueError:
            return None
        retry = Request("INVITE", request.uri, request.headers.copy(), request.body)
        retry.headers.remove("Via")
        retry.headers.set("CSeq", f"{next(self._cseq)} INVITE")
        retry.headers.add(
            "Authorization" if challenge.status == 401 else "Proxy-Authorization", authorization
        )
        return retry

    def _answered(self, response: Response, destination: Destination) -> bool:
        winner = next(h for h in self._handles if h.request.cseq == response.cseq)
        self._winner = winner
        request = winner.request
        dialog = Dialog.from_uac(request, response, peer=destination.peer)
        for handle in self._handles:
            if handle is not winner:
                with contextlib.suppress(Exception):
                    handle.cancel(ANSWERED_ELSEWHERE)
        return self._on_answer(response, dialog)

    def _cancel_all(self) -> None:
        for handle in self._handles:
            with contextlib.suppress(Exception):
                handle.cancel()


def most_telling(failures: list[Response]) -> tuple[int, str, bool]:
    """Of every destination's refusal, the status and reason to pass on (RFC 3261 16.7),
    and whether it means busy."""
    busy = next((r for r in failures if r.status in (486, 600)), None)
    chosen = busy or next((r for r in failures if r.status >= 600), None)
    if chosen is None:
        chosen = min(failures, key=lambda r: (r.status in (408, 503), r.status))
    status = 480 if chosen.status in (408, 503) else chosen.status
    reason = "Unavailable" if status != chosen.status else chosen.reason
    return status, reason, busy is not None


def trunk_destination(trunk: Trunk, number: str) -> Destination:
    uri = URI("sip", number, host=trunk.host, port=trunk.port)
    if trunk.transport != "udp":
        uri.params["transport"] = trunk.transport
    peer = Peer(trunk.transport, trunk.host, trunk.port)
    credentials = (trunk.username, trunk.password) if trunk.username and trunk.password else None
    to = Address(URI("sip", number, host=trunk.host))
    return Destination(uri, peer, to, credentials)
