"""The SIP endpoint: transport + transaction layer + one loop timer, for the PBX's TU.

A thin asyncio adapter around :class:`nuage.sip.transaction.TransactionManager`: every
message from the transport and every timer expiry is fed to the manager with
``loop.time()``, and the actions it returns are carried out here. All transactions share
one ``loop.call_at`` handle armed for the earliest deadline.

Server side::

    async def on_request(tx: ServerTransactionHandle) -> None:
        if tx.request.method == "INVITE":
            tx.respond(180)
            ...                                  # ring; tx.cancelled is set on CANCEL
            tx.respond(200, headers=[("Contact", "<sip:pbx@203.0.113.5>")], body=sdp)
            if await tx.wait_ack() is None:      # no ACK within 64*T1: hang up
                ...
        else:
            tx.respond(200)

    endpoint = SipEndpoint(on_request, on_ack=..., on_stray_2xx=...)
    await endpoint.listen_udp("0.0.0.0", 5060)

``on_request`` runs as one task per new request (never for retransmissions, never for
ACK or CANCEL). If it raises, or returns without a final response, the endpoint answers
500: it must await whatever it waits for before returning. The endpoint answers CANCEL
itself (200, or 481 when nothing matches) and sets ``tx.cancelled`` on the INVITE's handle;
the TU then answers the INVITE with 487. The 2xx to an INVITE is retransmitted until its
ACK arrives (RFC 3261 13.3.1.4). ACKs for 2xx go to ``on_ack(request, peer)`` and resolve
:meth:`ServerTransactionHandle.wait_ack`.

Client side::

    tx = await endpoint.request(invite, peer)     # adds Via (branch, rport), Max-Forwards
    async for response in tx:                     # provisionals, then the final
        ...
    final = await tx.final()                      # 408 on timeout, 503 on transport error
    tx.cancel()                                   # CANCEL once a provisional came; -> 487
                                                  # (tx.cancel_handle: the CANCEL's own)
    endpoint.send_ack(dialog.create_ack(cseq), peer)   # the TU ACKs 2xx itself

Retransmissions of a 2xx that the TU has already ACKed are answered with the same ACK;
other 2xx (a fork, or one not yet ACKed) go to ``on_stray_2xx(response, peer)``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from nuage.sip.grammar import SipSyntaxError
from nuage.sip.message import Message, Request, Response, Via, make_response
from nuage.sip.peer import Peer
from nuage.sip.transaction import (
    MAGIC_COOKIE,
    AckReceived,
    AckTimeout,
    Action,
    CancelReceived,
    ClientTransaction,
    DeliverResponse,
    InviteClientTransaction,
    InviteServerTransaction,
    NewRequest,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Replay,
    Resend,
    Send,
    ServerTransaction,
    StrayResponse,
    Terminated,
    TimedOut,
    TimerConfig,
    TransactionManager,
    TransportFailed,
)
from nuage.sip.transport import TransportLayer, TransportStats
from nuage.sip.websocket import CloseConnection, WebSocketFlow, WriteMessage

__all__ = [
    "ClientTransactionHandle",
    "OnAck",
    "OnRequest",
    "OnStray2xx",
    "ServerTransactionHandle",
    "SipEndpoint",
    "TransportLike",
    "new_branch",
    "new_tag",
]

_log = logging.getLogger(__name__)


class TransportLike(Protocol):
    """What the endpoint needs of :class:`nuage.sip.transport.TransportLayer`."""

    stats: TransportStats

    def send(self, message: Message, peer: Peer) -> None: ...

    def send_again(self, data: bytes, request: Request, source: Peer) -> None: ...

    def send_data(self, data: bytes, peer: Peer) -> None: ...

    def sent_by(self, transport: str) -> tuple[str, int]: ...

    async def close(self) -> None: ...


OnRequest = Callable[["ServerTransactionHandle"], Awaitable[None]]
OnAck = Callable[[Request, Peer], None]
OnStray2xx = Callable[[Response, Peer], None]


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


_R = TypeVar("_R")


async def _wait(waiters: list[asyncio.Future[_R]]) -> _R:
    """Wait for an outcome that :func:`_settle` will give every waiter in ``waiters``.

    One future per waiter, so that a cancelled waiter (asyncio.wait_for's timeout, a task
    torn down) cancels only its own future, never the outcome the others wait for; this
    is what asyncio.shield would do, without its extra future and loop round trip.
    """
    waiter: asyncio.Future[_R] = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        return await waiter
    finally:
        if waiter in waiters:  # cancelled before the outcome came
            waiters.remove(waiter)


def _settle(waiters: list[asyncio.Future[_R]], outcome: _R) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(outcome)
    waiters.clear()


class ServerTransactionHandle:
    """A request for the TU to answer, and the means to answer it."""

    __slots__ = (
        "_ack_request",
        "_ack_settled",
        "_ack_waiters",
        "_cancel_callbacks",
        "_endpoint",
        "_tag_in_request",
        "_to_tag",
        "_transaction",
        "cancelled",
        "request",
        "source",
    )

    def __init__(self, endpoint: SipEndpoint, transaction: ServerTransaction) -> None:
        self._endpoint = endpoint
        self._transaction = transaction
        self.request: Request = transaction.request
        self.source: Peer = transaction.peer
        # Set when a CANCEL matched this INVITE before its final response.
        self.cancelled = asyncio.Event()
        self._cancel_callbacks: list[Callable[[], None]] = []
        self._to_tag: str | None = None
        self._tag_in_request = False
        # The ACK outcome: settled with the ACK, or None on timeout or termination.
        self._ack_settled = False
        self._ack_request: Request | None = None
        self._ack_waiters: list[asyncio.Future[Request | None]] = []

    @property
    def to_tag(self) -> str:
        """Our To tag: the request's own for in-dialog requests, else one made up once."""
        if self._to_tag is None:
            existing = self.request.to.tag
            self._tag_in_request = existing is not None
            self._to_tag = existing or new_tag()
        return self._to_tag

    @property
    def final_sent(self) -> bool:
        return self._transaction.final_sent

    def add_cancel_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when a CANCEL matches this INVITE (cheaper than a task waiting
        on ``cancelled`` for every call)."""
        if self.cancelled.is_set():
            callback()
        else:
            self._cancel_callbacks.append(callback)

    def mark_cancelled(self) -> None:
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
        """Build (RFC 3261 8.2.6), send and return a response; non-100 ones carry our To tag.

        ``to_tag`` replaces the made-up tag, for this and later responses.
        """
        response = make_response(self.request, status, reason)
        if status != 100:
            tag = self.to_tag
            if to_tag is not None:
                self._to_tag = tag = to_tag
            if not self._tag_in_request:
                response.headers.set("To", f"{response.headers.get('To')};tag={tag}")
        for name, value in headers:
            response.headers.add(name, value)
        response.body = body
        self.send(response)
        return response

    def send(self, response: Response) -> None:
        """Send a response built by the TU (it must carry the request's Via, CSeq, ...)."""
        if response.status >= 200:
            # A CANCEL after the final response changes nothing (RFC 3261 9.2); the
            # transaction outlives it (RFC 6026 Timer L) and must not keep the callbacks'
            # owners (a whole call) alive that long.
            self._cancel_callbacks.clear()
        self._endpoint._respond(self._transaction, response)

    async def wait_ack(self) -> Request | None:
        """The ACK for our 2xx, or None if none came within 64*T1 (or no 2xx was sent)."""
        if self._ack_settled:
            return self._ack_request
        last = self._transaction.last_response
        if not isinstance(self._transaction, InviteServerTransaction) or (
            last is not None and last.status >= 300
        ):
            return None
        return await _wait(self._ack_waiters)

    def _ack_outcome(self, ack: Request | None) -> None:
        if self._ack_settled:
            return
        self._ack_settled = True
        self._ack_request = ack
        _settle(self._ack_waiters, ack)


class ClientTransactionHandle:
    """A request we sent: iterate for its responses, or await :meth:`final`."""

    __slots__ = (
        "_cancel_pending",
        "_cancel_reason",
        "_cancelled",
        "_endpoint",
        "_final",
        "_final_waiters",
        "_provisional_seen",
        "_queue",
        "_transaction",
        "cancel_handle",
        "peer",
        "request",
    )

    def __init__(self, endpoint: SipEndpoint, request: Request, peer: Peer) -> None:
        self._endpoint = endpoint
        self.request = request
        self.peer = peer
        self._transaction: ClientTransaction | None = None
        self._queue: asyncio.Queue[Response] = asyncio.Queue()
        self._final: Response | None = None
        self._final_waiters: list[asyncio.Future[Response]] = []
        self._provisional_seen = False
        self._cancel_pending = False
        self._cancelled = False
        # The CANCEL's Reason header (RFC 3326), if the canceller gave one.
        self._cancel_reason: str | None = None
        # The CANCEL's own transaction, once it has been sent.
        self.cancel_handle: ClientTransactionHandle | None = None

    @property
    def done(self) -> bool:
        return self._final is not None

    def __aiter__(self) -> AsyncIterator[Response]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[Response]:
        while True:
            response = await self._queue.get()
            yield response
            if response.status >= 200:
                return

    async def final(self) -> Response:
        if self._final is not None:
            return self._final
        return await _wait(self._final_waiters)

    def cancel(self, reason: str | None = None) -> None:
        """CANCEL this INVITE (RFC 3261 9.1): now if a provisional came, else on the first one.
        ``reason`` goes in a Reason header (RFC 3326), e.g. why a fork is no longer wanted."""
        if self.request.method != "INVITE":
            raise ValueError("only an INVITE can be cancelled")
        if self._final is not None or self._cancelled:
            return
        self._cancel_reason = reason
        if self._provisional_seen:
            self._send_cancel()
        else:
            self._cancel_pending = True

    def _send_cancel(self) -> None:
        self._cancelled = True
        self._cancel_pending = False
        self._endpoint._cancel(self)

    def _deliver(self, response: Response) -> None:
        if self._final is not None:
            return
        self._queue.put_nowait(response)
        if response.status >= 200:
            self._final = response
            _settle(self._final_waiters, response)
            return
        self._provisional_seen = True
        if self._cancel_pending:
            self._send_cancel()

    def _fail(self, status: int, reason: str | None = None) -> None:
        self._deliver(make_response(self.request, status, reason))


class SipEndpoint:
    """The transaction layer on an asyncio loop, with the TU callbacks described above.

    Pass ``transport`` to use a transport built elsewhere (its ``on_message`` must call
    :meth:`receive` and its ``on_send_error`` :meth:`send_error`); by default the endpoint
    builds a :class:`TransportLayer` with ``transport_options`` and closes it in :meth:`close`.
    Create it inside the running loop.
    """

    def __init__(
        self,
        on_request: OnRequest,
        *,
        on_ack: OnAck | None = None,
        on_stray_2xx: OnStray2xx | None = None,
        timers: TimerConfig | None = None,
        max_transactions: int = 100_000,
        transport: TransportLike | None = None,
        **transport_options: Any,
    ) -> None:
        self._on_request = on_request
        self._on_ack = on_ack
        self._on_stray_2xx = on_stray_2xx
        self._loop = asyncio.get_running_loop()
        self._manager = TransactionManager(timers, max_transactions=max_transactions)
        self._owns_transport = transport is None
        self._layer: TransportLayer | None = None
        if transport is None:
            self._layer = TransportLayer(
                self.receive, on_send_error=self.send_error, **transport_options
            )
            transport = self._layer
        self.transport: TransportLike = transport
        self._clients: dict[ClientTransaction, ClientTransactionHandle] = {}
        self._servers: dict[ServerTransaction, ServerTransactionHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False

    @property
    def timers(self) -> TimerConfig:
        return self._manager.config

    @property
    def transaction_count(self) -> int:
        return len(self._manager)

    async def listen_udp(self, host: str, port: int) -> None:
        await self._own_layer().listen_udp(host, port)

    async def listen_tcp(self, host: str, port: int) -> None:
        await self._own_layer().listen_tcp(host, port)

    def open_websocket(
        self,
        scheme: str,
        remote: tuple[str, int],
        local: tuple[str, int],
        write: WriteMessage,
        close: CloseConnection,
    ) -> WebSocketFlow | None:
        """A WebSocket connection from the HTTP server (see
        :meth:`nuage.sip.transport.TransportLayer.open_websocket`)."""
        return self._own_layer().open_websocket(scheme, remote, local, write, close)

    def _own_layer(self) -> TransportLayer:
        if self._layer is None:
            raise RuntimeError("listen on the transport you passed in")
        return self._layer

    # -- client side --

    async def request(self, request: Request, peer: Peer) -> ClientTransactionHandle:
        """Send ``request`` in a new client transaction; see the module doc."""
        self._add_via(request, peer)
        if "Max-Forwards" not in request.headers:
            request.headers.add("Max-Forwards", "70")
        handle = ClientTransactionHandle(self, request, peer)
        transaction, actions = self._manager.start_client(request, peer, self._loop.time())
        handle._transaction = transaction
        self._clients[transaction] = handle
        self._run(actions)
        return handle

    def send_ack(self, ack: Request, peer: Peer) -> None:
        """Send the ACK for a 2xx (no transaction); it answers that 2xx's retransmissions."""
        self._add_via(ack, peer)
        if "Max-Forwards" not in ack.headers:
            ack.headers.add("Max-Forwards", "70")
        data = bytes(ack)
        self.transport.send_data(data, peer)
        self._manager.remember_ack(data, ack, peer, self._loop.time())
        self._rearm()

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """Send outside any transaction (a response goes where its request came from)."""
        self.transport.send(message, peer)

    def _add_via(self, request: Request, peer: Peer) -> None:
        host, port = self.transport.sent_by(peer.transport)
        via = Via(peer.transport.upper(), host, port, {"branch": new_branch(), "rport": None})
        request.headers.prepend("Via", str(via))

    def _cancel(self, handle: ClientTransactionHandle) -> None:
        invite = handle._transaction
        if not isinstance(invite, InviteClientTransaction) or invite.terminated:
            return
        now = self._loop.time()
        cancel = self._manager.cancel_request(handle.request)
        if handle._cancel_reason is not None:
            cancel.headers.add("Reason", handle._cancel_reason)
        transaction, actions = self._manager.start_client(cancel, handle.peer, now)
        cancel_handle = ClientTransactionHandle(self, cancel, handle.peer)
        cancel_handle._transaction = transaction
        handle.cancel_handle = cancel_handle
        self._clients[transaction] = cancel_handle
        self._manager.cancel_sent(invite, now)
        self._run(actions)

    # -- server side --

    def _respond(self, transaction: ServerTransaction, response: Response) -> None:
        self._run(self._manager.respond(transaction, response, self._loop.time()))

    async def _serve(self, handle: ServerTransactionHandle) -> None:
        try:
            await self._on_request(handle)
        except Exception:
            _log.exception("on_request failed for %r from %s", handle.request, handle.source)
        else:
            if handle.final_sent:
                return
            _log.warning("on_request returned without answering %r", handle.request)
        if not handle.final_sent:
            handle.respond(500)

    # -- transport callbacks --

    def receive(self, message: Request | Response, peer: Peer) -> None:
        """The transport's ``on_message``."""
        now = self._loop.time()
        try:
            if isinstance(message, Request):
                actions = self._manager.receive_request(message, peer, now)
            else:
                actions = self._manager.receive_response(message, peer, now)
        except (SipSyntaxError, ValueError) as exc:
            # A header the transaction layer needs (Via, CSeq, Call-ID) is unusable.
            _log.debug("dropped %r from %s: %s", message, peer, exc)
            return
        self._run(actions)

    def send_error(self, message: Message, peer: Peer, exc: Exception) -> None:
        """The transport's ``on_send_error``."""
        if isinstance(message, Request | Response):
            _log.debug("send of %r to %s failed: %s", message, peer, exc)
            self._run(self._manager.send_error(message, self._loop.time()))

    # -- actions and the timer --

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            try:
                self._perform(action)
            except Exception:
                _log.exception("failed to carry out %r", action)
        self._rearm()

    def _perform(self, action: Action) -> None:
        if isinstance(action, Send):
            self.transport.send(action.message, action.peer)
        elif isinstance(action, Replay):
            self.transport.send_again(action.data, action.request, action.peer)
        elif isinstance(action, Resend):
            self.transport.send_data(action.data, action.peer)
        elif isinstance(action, DeliverResponse):
            client = self._clients.get(action.transaction)
            if client is not None:
                client._deliver(action.response)
                if action.response.status >= 200:
                    # Nothing more reaches a handle after its final: let it (its queue,
                    # its responses) go now rather than with its transaction, which
                    # may live on 32 s to absorb retransmissions (Timer D).
                    del self._clients[action.transaction]
        elif isinstance(action, NewRequest):
            handle = ServerTransactionHandle(self, action.transaction)
            self._servers[action.transaction] = handle
            if self._closed:
                handle.respond(503)
                return
            task = self._loop.create_task(self._serve(handle))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif isinstance(action, CancelReceived):
            self._cancel_received(action)
        elif isinstance(action, AckReceived):
            if action.invite is not None:
                acked = self._servers.pop(action.invite, None)
                if acked is not None:
                    # Its 2xx acknowledged, the handle has nothing more to hear: let it
                    # go now rather than at Timer L, 32 s on.
                    acked._ack_outcome(action.request)
            if self._on_ack is not None:
                self._on_ack(action.request, action.peer)
        elif isinstance(action, AckTimeout):
            unacked = self._servers.get(action.transaction)
            if unacked is not None:
                unacked._ack_outcome(None)
        elif isinstance(action, StrayResponse):
            if self._on_stray_2xx is not None:
                self._on_stray_2xx(action.response, action.peer)
            else:
                _log.debug("unclaimed 2xx %r from %s", action.response, action.peer)
        elif isinstance(action, TimedOut):
            client = self._clients.get(action.transaction)
            if client is not None:
                client._fail(408)
        elif isinstance(action, TransportFailed):
            failed = action.transaction
            if isinstance(failed, InviteClientTransaction | NonInviteClientTransaction):
                client = self._clients.get(failed)
                if client is not None:
                    client._fail(503, "Transport Failure")
        elif isinstance(action, Terminated):
            transaction = action.transaction
            if isinstance(transaction, InviteServerTransaction | NonInviteServerTransaction):
                ended = self._servers.pop(transaction, None)
                if ended is not None:
                    ended._ack_outcome(None)
            else:
                # Every way a client transaction ends has already given its handle a final.
                self._clients.pop(transaction, None)

    def _cancel_received(self, action: CancelReceived) -> None:
        cancel = action.transaction
        invite = self._servers.get(action.invite) if action.invite is not None else None
        # The INVITE's To tag: its handle's, or once the handle is gone (its 2xx was
        # acknowledged), the one its 2xx carried.
        tag = invite.to_tag if invite is not None else action.acknowledged_tag
        if tag is None:
            # RFC 3261 9.2: nothing to cancel.
            response = make_response(cancel.request, 481)
            response.headers.set("To", f"{response.headers.get('To')};tag={new_tag()}")
        else:
            # The CANCEL's 200 carries the same To tag as the INVITE's responses (9.2).
            response = make_response(cancel.request, 200)
            if cancel.request.to.tag is None:
                response.headers.set("To", f"{response.headers.get('To')};tag={tag}")
            if invite is not None and not invite.final_sent:
                invite.mark_cancelled()
        self._run(self._manager.respond(cancel, response, self._loop.time()))

    def _rearm(self) -> None:
        deadline = self._manager.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        # The loop may run a handle up to one clock tick early; never fire short of it.
        now = max(self._loop.time(), self._timer_at or 0.0)
        self._timer = None
        self._timer_at = None
        self._run(self._manager.handle_timers(now))

    # -- shutdown --

    async def close(self) -> None:
        """Stop the timer and the TU tasks; close the transport if the endpoint made it."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in list(self._clients.values()):
            client._fail(503, "Endpoint Closed")
        self._clients.clear()
        self._servers.clear()
        if self._owns_transport:
            await self.transport.close()
