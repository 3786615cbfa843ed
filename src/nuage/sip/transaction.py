"""The RFC 3261 section 17 transaction layer, sans-I/O.

No sockets, no clock, no asyncio: every entry point takes the current time ``now`` (seconds,
any monotonic origin) and returns a list of :data:`Action` objects saying what to send,
what to hand to the transaction user (TU) and what ended. :meth:`TransactionManager.next_deadline`
says when to call :meth:`TransactionManager.handle_timers` next. The asyncio adapter is
:mod:`nuage.sip.endpoint`.

Machines (RFC 3261 17.1.1, 17.1.2, 17.2.1, 17.2.2, with RFC 6026's "Accepted" state):

- :class:`InviteClientTransaction`: Timers A (retransmit, doubling, unreliable only), B (64*T1
  timeout), D (absorb final retransmissions); builds the ACK for 3xx-6xx itself and passes
  2xx up without ACK. A 2xx ends it: RFC 6026's Accepted state (Timer M) is the manager's,
  which answers that 2xx's retransmissions with the ACK the TU sent and hands any other
  2xx (a fork's) to the TU, with or without the transaction. A 3xx-6xx ends it too once
  the manager keeps its ACK, as sent, to answer that response's retransmissions until
  Timer D.
- :class:`NonInviteClientTransaction`: Timers E (doubling, capped at T2), F (timeout). A final
  response ends it: Timer K would only absorb that response's retransmissions, and the
  manager drops a response that matches no transaction just the same.
- :class:`InviteServerTransaction`: 100 Trying after ``trying_delay`` if the TU is silent; Timers
  G, H, I, L. In "Accepted" it also retransmits the 2xx until the ACK (RFC 3261 13.3.1.4): that
  is the UAS core's duty, kept here so that one timer table drives everything. Once the 2xx
  is acknowledged the manager keeps only its To tag (:mod:`nuage.sip.expiring`) until Timer
  L, to absorb the INVITE's retransmissions and answer a late CANCEL.
- :class:`NonInviteServerTransaction`: Timer J.

Over reliable transports (TCP, TLS, WS) Timers A, E, G do not run and D, I, J, K are zero.

Server transactions send their responses to the Peer the request came from: the transport
routes a response from there (RFC 3261 18.2.2, RFC 3581).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from nuage.sip.expiring import Expiring
from nuage.sip.message import CSeq, Headers, Request, Response, make_response
from nuage.sip.peer import Peer

MAGIC_COOKIE = "z9hG4bK"
RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss"})


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 timer base values (seconds); tests shorten them."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    # An INVITE server sends 100 Trying this long after the request if the TU has not
    # answered (RFC 3261 17.2.1 suggests 200 ms); 0 sends it at once.
    trying_delay: float = 0.2


class State(StrEnum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


# --- actions -------------------------------------------------------------------------------


@dataclass(slots=True)
class Send:
    """Give ``message`` to the transport for ``peer``."""

    message: Request | Response
    peer: Peer


@dataclass(slots=True)
class Replay:
    """Give ``data``, a final response as first sent, to the transport again: ``request``,
    a retransmission from ``peer``, asked for it."""

    data: bytes
    request: Request
    peer: Peer


@dataclass(slots=True)
class Resend:
    """Give ``data``, an ACK as sent, to the transport again for ``peer``: the final
    response it acknowledged came again."""

    data: bytes
    peer: Peer


@dataclass(slots=True)
class DeliverResponse:
    """A response for the TU of a client transaction (provisional, final, or a later 2xx)."""

    transaction: ClientTransaction
    response: Response


@dataclass(slots=True)
class NewRequest:
    """A request that is not a retransmission: the TU must answer it on ``transaction``."""

    transaction: ServerTransaction


@dataclass(slots=True)
class CancelReceived:
    """A CANCEL (its own server transaction) and the INVITE transaction it matches, if any;
    ``acknowledged_tag``: the To tag of the 2xx of a matching INVITE already acknowledged."""

    transaction: NonInviteServerTransaction
    invite: InviteServerTransaction | None
    acknowledged_tag: str | None = None


@dataclass(slots=True)
class AckReceived:
    """An ACK for a 2xx (no transaction of its own); ``invite`` is the transaction it confirms."""

    request: Request
    peer: Peer
    invite: InviteServerTransaction | None


@dataclass(slots=True)
class AckTimeout:
    """No ACK came for the 2xx of ``transaction`` within 64*T1: the session should end."""

    transaction: InviteServerTransaction


@dataclass(slots=True)
class StrayResponse:
    """A 2xx to INVITE that no transaction wants and no sent ACK answers: the TU must ACK it."""

    response: Response
    peer: Peer


@dataclass(slots=True)
class TimedOut:
    """Timer B or F fired (or a CANCEL went unanswered): the TU should act as on a 408."""

    transaction: ClientTransaction


@dataclass(slots=True)
class TransportFailed:
    """The transport could not send for this transaction (client: act as on a 503)."""

    transaction: Transaction


@dataclass(slots=True)
class Terminated:
    """The transaction is over and has left the manager's tables."""

    transaction: Transaction


Action = (
    Send
    | Replay
    | Resend
    | DeliverResponse
    | NewRequest
    | CancelReceived
    | AckReceived
    | AckTimeout
    | StrayResponse
    | TimedOut
    | TransportFailed
    | Terminated
)


# --- machines ------------------------------------------------------------------------------


class _Timed(Protocol):
    scheduled: float | None

    def next_deadline(self) -> float | None: ...

    def handle_timers(self, now: float) -> list[Action]: ...


class _Machine:
    """Timer bookkeeping shared by the four machines: named deadlines, fired in time order."""

    __slots__ = ("_timers", "config", "peer", "reliable", "request", "scheduled", "state")

    def __init__(self, request: Request, peer: Peer, config: TimerConfig, state: State) -> None:
        self.request = request
        self.peer = peer
        self.config = config
        self.reliable = peer.transport in RELIABLE_TRANSPORTS
        self.state = state
        self._timers: dict[str, float] = {}
        self.scheduled: float | None = None  # the deadline of its newest timer-heap entry

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def next_deadline(self) -> float | None:
        return min(self._timers.values()) if self._timers else None

    def handle_timers(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while self._timers and not self.terminated:
            name, deadline = min(self._timers.items(), key=lambda item: item[1])
            if deadline > now:
                break
            del self._timers[name]
            actions += self._fire(name, now)
        return actions

    def _fire(self, name: str, now: float) -> list[Action]:
        raise NotImplementedError

    def _terminate(self) -> list[Action]:
        self.state = State.TERMINATED
        self._timers.clear()
        return [Terminated(self)]  # type: ignore[arg-type]

    def _backoff(self, name: str, interval: float, now: float, cap: float | None) -> float:
        """Arm retransmission timer ``name`` at ``interval``; return the interval after it."""
        self._timers[name] = now + interval
        doubled = interval * 2
        return doubled if cap is None else min(doubled, cap)

    def handle_transport_error(self, now: float) -> list[Action]:
        if self.terminated:
            return []
        return [TransportFailed(self), *self._terminate()]  # type: ignore[arg-type]


class InviteClientTransaction(_Machine):
    """RFC 3261 17.1.1; a 2xx ends it (its retransmissions are the manager's)."""

    __slots__ = ("_cancel_sent", "_interval", "cseq", "key", "last_ack")

    def __init__(self, request: Request, peer: Peer, config: TimerConfig) -> None:
        super().__init__(request, peer, config, State.CALLING)
        via = request.top_via
        self.key = (via.branch or "", "INVITE")
        self.cseq = request.cseq
        self._interval = config.t1
        self.last_ack: Request | None = None
        self._cancel_sent = False

    def start(self, now: float) -> list[Action]:
        if not self.reliable:
            # Timer A doubles without the T2 cap (RFC 3261 17.1.1.2): 0.5, 1, 2, 4, 8, 16 s.
            self._interval = self._backoff("A", self._interval, now, None)
        self._timers["B"] = now + 64 * self.config.t1
        return [Send(self.request, self.peer)]

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "A" and self.state is State.CALLING:
            self._interval = self._backoff("A", self._interval, now, None)
            return [Send(self.request, self.peer)]
        if name in ("B", "cancel") and self.state in (State.CALLING, State.PROCEEDING):
            return [TimedOut(self), *self._terminate()]
        if name == "D":
            return self._terminate()
        return []

    def cancel_sent(self, now: float) -> None:
        """A CANCEL left for this INVITE: give up on a final response after 64*T1 (RFC 3261 9.1)."""
        if not self._cancel_sent and self.state in (State.CALLING, State.PROCEEDING):
            self._cancel_sent = True
            self._timers["cancel"] = now + 64 * self.config.t1

    def handle_response(self, response: Response, now: float) -> list[Action]:
        status = response.status
        state = self.state
        if status < 200:
            if state in (State.CALLING, State.PROCEEDING):
                self.state = State.PROCEEDING
                self._timers.pop("A", None)
                self._timers.pop("B", None)
                return [DeliverResponse(self, response)]
            return []
        if status < 300:
            if state in (State.CALLING, State.PROCEEDING):
                return [DeliverResponse(self, response), *self._terminate()]
            return []
        if state in (State.CALLING, State.PROCEEDING):
            self.state = State.COMPLETED
            self._timers.clear()
            self.last_ack = self._build_ack(response)
            actions: list[Action] = [
                Send(self.last_ack, self.peer),
                DeliverResponse(self, response),
            ]
            if self.reliable:
                return actions + self._terminate()
            self._timers["D"] = now + max(32.0, 64 * self.config.t1)
            return actions
        if state is State.COMPLETED and self.last_ack is not None:
            return [Send(self.last_ack, self.peer)]
        return []

    def _build_ack(self, response: Response) -> Request:
        """The ACK for a 3xx-6xx, per RFC 3261 17.1.1.3."""
        original = self.request.headers
        headers = Headers()
        headers.add("Via", original.get_all("Via")[0])
        headers.add("Max-Forwards", "70")
        for route in original.values("Route"):
            headers.add("Route", route)
        headers.add("From", original.get("From") or "")
        headers.add("To", response.headers.get("To") or "")
        headers.add("Call-ID", original.get("Call-ID") or "")
        headers.add("CSeq", str(CSeq(self.cseq.seq, "ACK")))
        return Request("ACK", self.request.uri, headers)


class NonInviteClientTransaction(_Machine):
    """RFC 3261 17.1.2."""

    __slots__ = ("_interval", "key")

    def __init__(self, request: Request, peer: Peer, config: TimerConfig) -> None:
        super().__init__(request, peer, config, State.TRYING)
        self.key = (request.top_via.branch or "", request.method)
        self._interval = config.t1

    def start(self, now: float) -> list[Action]:
        if not self.reliable:
            self._interval = self._backoff("E", self._interval, now, self.config.t2)
        self._timers["F"] = now + 64 * self.config.t1
        return [Send(self.request, self.peer)]

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            # In Proceeding the interval is T2 (RFC 3261 17.1.2.2).
            interval = self.config.t2 if self.state is State.PROCEEDING else self._interval
            self._interval = self._backoff("E", interval, now, self.config.t2)
            return [Send(self.request, self.peer)]
        if name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            return [TimedOut(self), *self._terminate()]
        return []

    def handle_response(self, response: Response, now: float) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        if response.status < 200:
            self.state = State.PROCEEDING
            return [DeliverResponse(self, response)]
        return [DeliverResponse(self, response), *self._terminate()]


class InviteServerTransaction(_Machine):
    """RFC 3261 17.2.1 with RFC 6026 "Accepted", plus the 2xx retransmission of 13.3.1.4."""

    __slots__ = ("_interval", "ack_key", "key", "last_response")

    def __init__(
        self,
        request: Request,
        peer: Peer,
        config: TimerConfig,
        key: tuple[object, ...],
    ) -> None:
        super().__init__(request, peer, config, State.PROCEEDING)
        self.key = key
        self.last_response: Response | None = None
        self.ack_key: tuple[str, int] | None = None
        self._interval = config.t1

    @property
    def final_sent(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    @property
    def acknowledged_tag(self) -> str | None:
        """The To tag of its 2xx once that 2xx is acknowledged, else None."""
        if self.state is State.ACCEPTED and self.ack_key is None and self.last_response:
            return self.last_response.to.tag
        return None

    def start(self, now: float) -> list[Action]:
        if self.config.trying_delay <= 0:
            return self._send_trying()
        self._timers["trying"] = now + self.config.trying_delay
        return []

    def _send_trying(self) -> list[Action]:
        self.last_response = make_response(self.request, 100)
        return [Send(self.last_response, self.peer)]

    def send_response(self, response: Response, now: float) -> list[Action]:
        status = response.status
        if self.state is State.PROCEEDING:
            self._timers.pop("trying", None)
            self.last_response = response
            if status < 200:
                return [Send(response, self.peer)]
            self._interval = self.config.t1
            if status < 300:
                self.state = State.ACCEPTED
                self.ack_key = (self.request.call_id, self.request.cseq.seq)
                if not self.reliable:
                    self._interval = self._backoff("G", self._interval, now, self.config.t2)
                self._timers["L"] = now + 64 * self.config.t1
            else:
                self.state = State.COMPLETED
                if not self.reliable:
                    self._interval = self._backoff("G", self._interval, now, self.config.t2)
                self._timers["H"] = now + 64 * self.config.t1
            return [Send(response, self.peer)]
        if self.state is State.ACCEPTED and 200 <= status < 300:
            # The TU may repeat its 2xx (RFC 6026 7.1); it replaces what Timer G repeats.
            self.last_response = response
            return [Send(response, self.peer)]
        return []

    def handle_request(self, request: Request, now: float) -> list[Action]:
        """A retransmitted INVITE, or the ACK for a 3xx-6xx (same branch)."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._timers.clear()
                if self.reliable:
                    return self._terminate()
                self._timers["I"] = now + self.config.t4
            return []
        if self.state is State.PROCEEDING:
            # The peer is retransmitting: reassure it at once rather than at Timer "trying".
            if self.last_response is None:
                self._timers.pop("trying", None)
                return self._send_trying()
            return [Send(self.last_response, self.peer)]
        if self.state is State.COMPLETED and self.last_response is not None:
            return [Send(self.last_response, self.peer)]
        # Confirmed and Accepted absorb retransmissions (RFC 6026 7.1).
        return []

    def handle_ack(self, now: float) -> list[Action]:
        """The ACK for our 2xx: stop retransmitting it; stay Accepted to absorb INVITEs
        (unless the manager keeps just the To tag for that)."""
        if self.state is State.ACCEPTED and self.ack_key is not None:
            self.ack_key = None
            self._timers.pop("G", None)
        return []

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "trying" and self.state is State.PROCEEDING and self.last_response is None:
            return self._send_trying()
        if name == "G" and self.last_response is not None:
            if self.state is State.COMPLETED or (
                self.state is State.ACCEPTED and self.ack_key is not None
            ):
                self._interval = self._backoff("G", self._interval, now, self.config.t2)
                return [Send(self.last_response, self.peer)]
            return []
        if name == "H" and self.state is State.COMPLETED:
            return self._terminate()
        if name == "I" and self.state is State.CONFIRMED:
            return self._terminate()
        if name == "L" and self.state is State.ACCEPTED:
            if self.ack_key is not None:
                return [AckTimeout(self), *self._terminate()]
            return self._terminate()
        return []


class NonInviteServerTransaction(_Machine):
    """RFC 3261 17.2.2."""

    __slots__ = ("key", "last_response")

    def __init__(
        self,
        request: Request,
        peer: Peer,
        config: TimerConfig,
        key: tuple[object, ...],
    ) -> None:
        super().__init__(request, peer, config, State.TRYING)
        self.key = key
        self.last_response: Response | None = None

    @property
    def final_sent(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    def start(self, now: float) -> list[Action]:
        return []

    def send_response(self, response: Response, now: float) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        self.last_response = response
        if response.status < 200:
            self.state = State.PROCEEDING
            return [Send(response, self.peer)]
        self.state = State.COMPLETED
        actions: list[Action] = [Send(response, self.peer)]
        if self.reliable:
            return actions + self._terminate()
        self._timers["J"] = now + 64 * self.config.t1
        return actions

    def handle_request(self, request: Request, now: float) -> list[Action]:
        if self.state is State.TRYING or self.last_response is None:
            return []
        return [Send(self.last_response, self.peer)]

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "J":
            return self._terminate()
        return []


ClientTransaction = InviteClientTransaction | NonInviteClientTransaction
ServerTransaction = InviteServerTransaction | NonInviteServerTransaction
Transaction = ClientTransaction | ServerTransaction


def _replay_key(key: tuple[object, ...]) -> str:
    """A string for an RFC 3261 server transaction key (branch, sent-by host and port,
    method): a replay's key, and nothing the collector tracks."""
    branch, host, port, method = key
    return f"{branch} {host} {port} {method}"


class OverloadError(RuntimeError):
    """The transaction table is full."""


class TransactionManager:
    """The transaction tables: demultiplexes messages to machines and drives their timers.

    ``max_transactions`` bounds the tables: a new request beyond it gets a stateless 503,
    a new client transaction raises :class:`OverloadError`. A non-INVITE server
    transaction over UDP (with an RFC 3261 branch) is over for the TU at its final
    response; its replay (:mod:`nuage.sip.expiring`) then answers retransmissions until
    Timer J. An INVITE server transaction (RFC 3261 branch) is over at the ACK of its 2xx;
    its To tag then absorbs retransmissions and answers a late CANCEL until Timer L.
    Either has a bound of its own, four times ``max_transactions``; past it the transaction
    stays whole until its timer.
    """

    def __init__(
        self, config: TimerConfig | None = None, *, max_transactions: int = 100_000
    ) -> None:
        self.config = config or TimerConfig()
        self.max_transactions = max_transactions
        # Replays do not count as transactions: 2000 REGISTERs/s leave 128,000 of them.
        self.replays: Expiring[bytes] = Expiring(64 * self.config.t1, 4 * max_transactions)
        # The To tags of the 2xx of INVITEs acknowledged, under their transaction's key.
        self._acknowledged: Expiring[str] = Expiring(64 * self.config.t1, 4 * max_transactions)
        # The ACKs sent (as sent, and where to): for a 2xx by "Call-ID CSeq-number To-tag",
        # for a 3xx-6xx by the INVITE's branch (no spaces: the two kinds never meet).
        self._acks: Expiring[tuple[bytes, Peer]] = Expiring(
            64 * self.config.t1, 4 * max_transactions
        )
        self._clients: dict[tuple[str, str], ClientTransaction] = {}
        self._servers: dict[tuple[object, ...], ServerTransaction] = {}
        # INVITE server transactions whose 2xx awaits its ACK, by (Call-ID, CSeq number).
        self._awaiting_ack: dict[tuple[str, int], InviteServerTransaction] = {}
        self._heap: list[tuple[float, int, _Timed]] = []
        self._counter = itertools.count()

    def __len__(self) -> int:
        """The transactions in progress (replays aside)."""
        return len(self._clients) + len(self._servers)

    # -- client side --

    def start_client(
        self, request: Request, peer: Peer, now: float
    ) -> tuple[ClientTransaction, list[Action]]:
        """Start a client transaction for ``request`` (which carries its top Via with a branch)."""
        if len(self) >= self.max_transactions:
            raise OverloadError("transaction table full")
        transaction: ClientTransaction
        if request.method == "INVITE":
            transaction = InviteClientTransaction(request, peer, self.config)
        else:
            transaction = NonInviteClientTransaction(request, peer, self.config)
        self._clients[transaction.key] = transaction
        return transaction, self._after(transaction, transaction.start(now))

    def cancel_request(self, invite: Request) -> Request:
        """The CANCEL for ``invite`` (RFC 3261 9.1); start it with :meth:`start_client`."""
        original = invite.headers
        headers = Headers()
        headers.add("Via", original.get_all("Via")[0])
        headers.add("Max-Forwards", "70")
        for route in original.values("Route"):
            headers.add("Route", route)
        for name in ("From", "To", "Call-ID"):
            headers.add(name, original.get(name) or "")
        headers.add("CSeq", str(CSeq(invite.cseq.seq, "CANCEL")))
        return Request("CANCEL", invite.uri, headers)

    def cancel_sent(self, invite: InviteClientTransaction, now: float) -> None:
        invite.cancel_sent(now)
        self._schedule(invite)

    def receive_response(self, response: Response, peer: Peer, now: float) -> list[Action]:
        via = response.top_via
        cseq = response.cseq
        branch = via.branch or ""
        transaction = self._clients.get((branch, cseq.method))
        if transaction is not None:
            actions = transaction.handle_response(response, now)
            if (
                isinstance(transaction, InviteClientTransaction)
                and transaction.state is State.COMPLETED
                and transaction.last_ack is not None
                and self._acks.keep(branch, (bytes(transaction.last_ack), transaction.peer), now)
            ):
                # Timer D is the ACK's from here: the INVITE and the transaction go.
                actions += transaction._terminate()
            return self._after(transaction, actions)
        if cseq.method != "INVITE" or response.status < 200:
            return []
        if response.status < 300:
            # The first 2xx ended its transaction; repeats (retransmissions, forks) are
            # answered from the ACK the TU sent, or handed to it as strays (RFC 6026).
            return self._answer_2xx(response, peer, cseq)
        sent = self._acks.get(branch)
        return [] if sent is None else [Resend(*sent)]

    def _answer_2xx(self, response: Response, peer: Peer, cseq: CSeq) -> list[Action]:
        sent = self._acks.get(f"{response.call_id} {cseq.seq} {response.to.tag or ''}")
        if sent is not None:
            return [Resend(*sent)]
        return [StrayResponse(response, peer)]

    def remember_ack(self, data: bytes, ack: Request, peer: Peer, now: float) -> None:
        """Keep ``data``, ``ack`` as sent for a 2xx, so that retransmissions of that 2xx
        are answered with it."""
        self._acks.keep(f"{ack.call_id} {ack.cseq.seq} {ack.to.tag or ''}", (data, peer), now)

    # -- server side --

    def receive_request(self, request: Request, peer: Peer, now: float) -> list[Action]:
        via = request.top_via
        method = request.method
        branch = via.branch or ""
        matched = "INVITE" if method == "ACK" else method
        key: tuple[object, ...]
        if branch.startswith(MAGIC_COOKIE):
            key = (branch, via.host.lower(), via.port, matched)
            if matched != "INVITE":
                sent = self.replays.get(_replay_key(key))
                if sent is not None:
                    return [Replay(sent, request, peer)]
            elif method == "INVITE" and _replay_key(key) in self._acknowledged:
                return []  # a retransmission of an INVITE answered and acknowledged
        else:
            # RFC 2543 peers (17.2.3, simplified): the request's identity stands in for a branch.
            key = (request.call_id, request.from_.tag, request.cseq.seq, str(via), matched)
        transaction = self._servers.get(key)
        if transaction is not None:
            if method == "ACK" and transaction.state is State.ACCEPTED:
                # A 2xx ACK reusing the INVITE's branch (RFC 2543 habit): still a 2xx ACK.
                return self._ack_2xx(request, peer, now)
            return self._after(transaction, transaction.handle_request(request, now))
        if method == "ACK":
            return self._ack_2xx(request, peer, now)
        if len(self) >= self.max_transactions:
            return [Send(make_response(request, 503), peer)]
        server: ServerTransaction
        if method == "INVITE":
            server = InviteServerTransaction(request, peer, self.config, key)
        else:
            server = NonInviteServerTransaction(request, peer, self.config, key)
        self._servers[key] = server
        actions = self._after(server, server.start(now))
        if isinstance(server, NonInviteServerTransaction) and method == "CANCEL":
            invite_key = (*key[:-1], "INVITE")
            invite = self._servers.get(invite_key)
            if isinstance(invite, InviteServerTransaction):
                actions.append(CancelReceived(server, invite, invite.acknowledged_tag))
            else:
                tag = self._acknowledged.get(_replay_key(invite_key)) if len(key) == 4 else None
                actions.append(CancelReceived(server, None, tag))
        else:
            actions.append(NewRequest(server))
        return actions

    def _ack_2xx(self, request: Request, peer: Peer, now: float) -> list[Action]:
        invite = self._awaiting_ack.pop((request.call_id, request.cseq.seq), None)
        if invite is None:
            return [AckReceived(request, peer, None)]
        invite.handle_ack(now)
        actions: list[Action] = [AckReceived(request, peer, invite)]
        if (
            invite.last_response is not None
            and len(invite.key) == 4  # an RFC 3261 branch
            and self._acknowledged.keep(
                _replay_key(invite.key), invite.last_response.to.tag or "", now
            )
        ):
            # Timer L is the To tag's from here: the INVITE, its 2xx, the transaction go.
            actions += invite._terminate()
        return self._after(invite, actions)

    def respond(
        self, transaction: ServerTransaction, response: Response, now: float
    ) -> list[Action]:
        actions = transaction.send_response(response, now)
        if isinstance(transaction, InviteServerTransaction) and transaction.ack_key is not None:
            self._awaiting_ack[transaction.ack_key] = transaction
        if (
            isinstance(transaction, NonInviteServerTransaction)
            and transaction.state is State.COMPLETED
            and transaction.last_response is not None
            and len(transaction.key) == 4  # an RFC 3261 branch
            and self.replays.keep(
                _replay_key(transaction.key),
                bytes(transaction.last_response),
                now,
            )
        ):
            # Timer J is the replay's from here: the transaction is over for the TU.
            actions += transaction._terminate()
        return self._after(transaction, actions)

    # -- both --

    def send_error(self, message: Request | Response, now: float) -> list[Action]:
        """The transport failed to send ``message``: fail the transaction that sent it."""
        transaction: Transaction | None
        if isinstance(message, Request):
            if message.method == "ACK":
                return []
            transaction = self._clients.get((message.top_via.branch or "", message.method))
        else:
            # A response carries the request's top Via, so it names its transaction's key.
            via = message.top_via
            transaction = self._servers.get(
                (via.branch or "", via.host.lower(), via.port, message.cseq.method)
            )
        if transaction is None:
            return []
        return self._after(transaction, transaction.handle_transport_error(now))

    def next_deadline(self) -> float | None:
        heap = self._heap
        kept = [
            deadline
            for deadline in (
                self.replays.next_deadline(),
                self._acknowledged.next_deadline(),
                self._acks.next_deadline(),
            )
            if deadline is not None
        ]
        while heap:
            deadline, _, item = heap[0]
            if item.next_deadline() == deadline:
                kept.append(deadline)
                break
            heapq.heappop(heap)
        return min(kept, default=None)

    def handle_timers(self, now: float) -> list[Action]:
        self.replays.expire(now)
        self._acknowledged.expire(now)
        self._acks.expire(now)
        actions: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, item = heapq.heappop(heap)
            if item.next_deadline() != deadline:
                continue
            actions += self._after(item, item.handle_timers(now))  # type: ignore[arg-type]
        return actions

    def _after(self, transaction: Transaction, actions: list[Action]) -> list[Action]:
        """Reschedule ``transaction`` and drop it from the tables if it ended."""
        if transaction.terminated:
            if isinstance(transaction, (InviteClientTransaction, NonInviteClientTransaction)):
                if self._clients.get(transaction.key) is transaction:
                    del self._clients[transaction.key]
            else:
                if self._servers.get(transaction.key) is transaction:
                    del self._servers[transaction.key]
                if isinstance(transaction, InviteServerTransaction):
                    ack_key = (transaction.request.call_id, transaction.request.cseq.seq)
                    if self._awaiting_ack.get(ack_key) is transaction:
                        del self._awaiting_ack[ack_key]
        else:
            self._schedule(transaction)
        return actions

    def _schedule(self, item: _Timed) -> None:
        deadline = item.next_deadline()
        if deadline is not None and deadline != item.scheduled:
            item.scheduled = deadline
            heapq.heappush(self._heap, (deadline, next(self._counter), item))
