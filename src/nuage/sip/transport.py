"""SIP over UDP, TCP (RFC 3261 section 18, RFC 3581 rport) and WebSocket (RFC 7118).

The transport layer turns datagrams and byte streams into parsed messages handed to one
synchronous ``on_message(message, peer)`` callback, and sends messages to a :class:`Peer`.
It keeps no SIP state beyond connections: retransmissions, matching and timers belong to
the transaction layer above.

Choices the layer above relies on:

- ``send(response, peer)`` takes the Peer the *request* came from and routes the response
  itself per RFC 3261 section 18.2.2 and RFC 3581
  (:meth:`TransportLayer.response_destination`); requests go to exactly the Peer given.
- Requests larger than :data:`UDP_MTU_THRESHOLD` SHOULD go over TCP (RFC 3261 section
  18.1.1). That switch is the transaction user's, since only it knows whether the target
  accepts TCP: this layer sends over UDP whatever it is asked to.
- Send failures are reported through ``on_send_error(message, peer, exc)`` from a later
  loop iteration, never from inside ``send()``, so the caller is not re-entered; those
  of :meth:`TransportLayer.send_again` are only counted. A datagram dropped because the
  socket's send buffer is full is not reported: like loss in the network, the
  transaction's retransmissions cover it.
- Hosts given to ``send`` should be IP literals; a host name is resolved with one plain
  address look-up (the RFC 3263 NAPTR/SRV procedure belongs above).
- Incoming requests get ``received`` and ``rport`` in their top Via (RFC 3261 section
  18.2.1, RFC 3581) before they are passed up. Incoming responses are passed up without
  checking the top Via sent-by (section 18.1.2): the transaction layer matches them by
  branch and drops strays.
- TCP: one connection per remote (host, port), reused by later sends and by requests
  that arrived on it (``Peer.connection_id``); CRLFCRLF pings are answered with CRLF
  (RFC 5626 section 4.4.1); a connection without traffic for ``tcp_idle_timeout`` is
  closed, and so is one that breaks framing or stops reading what we write.
- WebSocket ("ws", or "wss" behind TLS): the HTTP server accepts the connections and
  feeds them in (:meth:`TransportLayer.open_websocket`, :mod:`nuage.sip.websocket`). Each
  is keyed by the client's address like a TCP connection, but we can never open one: a
  send whose connection is gone fails, and ``on_flow_lost(peer)`` says when one ends so
  that what was bound to it (registrations) goes with it. No idle timeout: the HTTP
  server's WebSocket pings find dead clients, and a browser that only re-registers every
  few minutes must keep its connection.

Nothing raised while handling received bytes ever escapes a transport callback: hostile
input is counted in :attr:`TransportLayer.stats` and logged at debug level only; a
malformed request is answered statelessly (400, or the parser's status) to its source.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import secrets
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from nuage.sip.framing import PING, FramingError, StreamFramer
from nuage.sip.grammar import SipSyntaxError, split_comma_list
from nuage.sip.message import (
    Address,
    Message,
    Request,
    Response,
    Via,
    make_response,
)
from nuage.sip.parser import MessageRejected, parse_message
from nuage.sip.peer import Peer
from nuage.sip.websocket import CloseConnection, WebSocketFlow, WriteMessage

__all__ = [
    "UDP_MTU_THRESHOLD",
    "OnFlowLost",
    "OnMessage",
    "OnSendError",
    "TransportLayer",
    "TransportStats",
]

_log = logging.getLogger(__name__)

UDP_MTU_THRESHOLD = 1300
"""Bytes above which a request should be sent over TCP instead (RFC 3261 section 18.1.1)."""

DEFAULT_PORTS: dict[str, int] = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}

OnMessage = Callable[[Request | Response, Peer], None]
OnSendError = Callable[[Message, Peer, Exception], None]
OnFlowLost = Callable[[Peer], None]

# Largest UDP payload over IPv4; beyond it sendto() fails with EMSGSIZE.
_MAX_DATAGRAM = 65507
# A burst of REGISTERs must not overflow the kernel's default (~200 KB) receive buffer.
_UDP_RCVBUF = 4 * 1024 * 1024
# A peer that stops reading must not make us buffer without bound.
_MAX_WRITE_BUFFER = 1024 * 1024
# Messages queued on a connection still being set up.
_MAX_PENDING = 256
_PONG = b"\r\n"
# Below this a datagram cannot be a SIP message ("SIP/2.0 100 x\r\n" plus headers).
_SHORTEST_MESSAGE = 16


@dataclass(slots=True)
class TransportStats:
    """Counters, cheap enough to bump on every packet."""

    received: int = 0  # messages parsed and passed to on_message
    sent: int = 0  # messages handed to the operating system
    rejected: int = 0  # malformed requests answered with an error response
    dropped: int = 0  # inputs discarded: garbage, malformed responses, framing errors
    keepalives: int = 0  # CRLF keep-alives received (RFC 5626), answered on streams
    send_errors: int = 0  # failed sends (reported through on_send_error but replays')
    send_dropped: int = 0  # datagrams dropped because the socket's send buffer was full
    callback_errors: int = 0  # on_message raised (a bug above us)
    tcp_connections: int = 0  # stream connections open now (inbound and outbound)
    tcp_opened: int = 0  # stream connections ever established
    tcp_refused: int = 0  # inbound connections closed at once: max_tcp_connections reached
    tcp_idle_closed: int = 0  # connections closed by the idle timeout
    ws_connections: int = 0  # WebSocket connections open now
    ws_opened: int = 0  # WebSocket connections ever accepted


def _same_ip(a: str, b: str) -> bool:
    if a == b:
        return True
    if ":" not in a and ":" not in b:
        # IPv4 literals (or names) that differ as text: ipaddress accepts one spelling only.
        return False
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _add_to_tag(response: Response) -> None:
    """A UAS tags the To of its final responses (RFC 3261 section 8.2.6.2)."""
    value = response.headers.get("To")
    if value is None:
        return
    try:
        address = Address.parse(value)
    except SipSyntaxError:
        return  # possibly why the request was rejected; echo it untouched
    if address.tag is None:
        # A new Address: parsed ones are shared (cached), never changed in place.
        tagged = Address(
            address.uri, address.display_name, {**address.params, "tag": secrets.token_hex(8)}
        )
        response.headers.set("To", str(tagged))


def _ip_family(host: str) -> socket.AddressFamily | None:
    """AF_INET or AF_INET6 for an IP literal, None for a host name."""
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        pass
    else:
        return socket.AF_INET
    try:
        socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    except OSError:
        return None
    return socket.AF_INET6


def primary_ip(family: socket.AddressFamily) -> str:
    """The source address the kernel would use towards the Internet (no packet is sent)."""
    probe = ("192.0.2.1", 9) if family == socket.AF_INET else ("2001:db8::1", 9)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(probe)
            return str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1" if family == socket.AF_INET else "::1"


class _UdpEndpoint(asyncio.DatagramProtocol):
    __slots__ = ("_layer", "paused", "transport")

    def __init__(self, layer: TransportLayer) -> None:
        self._layer = layer
        self.transport: asyncio.DatagramTransport | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Neither asyncio's nor uvloop's class subclasses DatagramTransport; it quacks like one.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        layer = self._layer
        try:
            if len(data) < _SHORTEST_MESSAGE:
                # Bare CRLFs are keep-alives some UAs send; anything else this short is noise.
                if data and not data.strip(b"\r\n"):
                    layer.stats.keepalives += 1
                else:
                    layer.stats.dropped += 1
                return
            layer._receive(data, Peer("udp", str(addr[0]), int(addr[1])), self)
        except Exception:
            layer.stats.dropped += 1
            _log.debug("udp: datagram from %r dropped", addr, exc_info=True)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors arrive later and unrelated to any send; the transaction times out.
        _log.debug("udp: %s", exc)

    # The loop buffers datagrams the kernel would not take; past its high-water mark it
    # pauses us, and we drop rather than let that buffer grow without bound.
    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def sendto(self, data: bytes, address: tuple[str, int]) -> None:
        if self.transport is None or self.paused:
            # Like loss in the network: the transaction layer's retransmissions cover it.
            self._layer.stats.send_dropped += 1
            return
        self.transport.sendto(data, address)
        self._layer.stats.sent += 1

    def reply(self, data: bytes, peer: Peer) -> None:
        self.sendto(data, (peer.host, peer.port))


class _StreamConnection(asyncio.Protocol):
    """One TCP connection, inbound or outbound, with its framer and idle timer."""

    __slots__ = (
        "_idle_timer",
        "_layer",
        "closed",
        "established",
        "framer",
        "id",
        "key",
        "last_activity",
        "name",
        "peer",
        "pending",
        "transport",
    )

    def __init__(self, layer: TransportLayer, name: str, key: tuple[str, int] | None) -> None:
        self._layer = layer
        self.name = name
        self.id = next(layer._connection_ids)
        # (host, port) it was opened towards; inbound connections learn it on accept.
        self.key = key
        self.peer: Peer | None = None
        self.transport: asyncio.Transport | None = None
        self.framer = StreamFramer(max_size=layer.max_message_size)
        self.pending: list[tuple[Message | None, Peer, bytes]] = []
        self.last_activity = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self.established = False  # counted in stats.tcp_connections
        self.closed = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        try:
            self._layer._connection_made(self, self.transport)
        except Exception:
            _log.debug("tcp: connection set-up failed", exc_info=True)
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        layer = self._layer
        try:
            self.last_activity = layer._loop.time()
            self._receive(data)
        except Exception:
            layer.stats.dropped += 1
            _log.debug("tcp: data from %s dropped", self.peer, exc_info=True)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._layer._connection_lost(self, exc)
        except Exception:
            _log.debug("tcp: connection clean-up failed", exc_info=True)

    # receiving

    def _receive(self, data: bytes) -> None:
        layer = self._layer
        peer = self.peer
        assert peer is not None
        try:
            frames = self.framer.feed(data)
        except FramingError as exc:
            layer.stats.dropped += 1
            _log.debug("tcp: framing error from %s: %s", peer, exc)
            self.close()
            return
        for frame in frames:
            if self.closed:
                return
            if frame == PING:
                layer.stats.keepalives += 1
                self.write_raw(_PONG)
                continue
            layer._receive(frame, peer, self)

    def reply(self, data: bytes, peer: Peer) -> None:
        if self.write_raw(data):
            self._layer.stats.sent += 1

    # sending and lifetime

    def write_raw(self, data: bytes) -> bool:
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > _MAX_WRITE_BUFFER:
            _log.debug("tcp: %s does not read; closing", self.peer)
            self.close()
            return False
        transport.write(data)
        self.last_activity = self._layer._loop.time()
        return True

    def start_idle_timer(self) -> None:
        self.last_activity = self._layer._loop.time()
        self._schedule_idle_check()

    def _schedule_idle_check(self) -> None:
        # One timer per connection re-armed lazily, rather than reset on every segment.
        deadline = self.last_activity + self._layer.tcp_idle_timeout
        self._idle_timer = self._layer._loop.call_at(deadline, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self.closed:
            return
        if self._layer._loop.time() - self.last_activity >= self._layer.tcp_idle_timeout:
            self._layer.stats.tcp_idle_closed += 1
            self.close()
        else:
            self._schedule_idle_check()

    def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.close()


# Where a received message came from, and where a stateless rejection goes back.
_Source = _UdpEndpoint | _StreamConnection | WebSocketFlow


class TransportLayer:
    """UDP, TCP and WebSocket SIP transports feeding one synchronous ``on_message`` callback.

    ``on_send_error(message, peer, exc)`` is told about messages that could not be sent
    (connection refused or timed out, no socket for that address family, a connection that
    closed with the message queued, ...), so the transaction layer can act as on a 503
    (RFC 3261 section 8.1.3.1). ``on_flow_lost(peer)`` is told when a WebSocket connection
    ends: nothing can reach that peer any more. Create it inside the running event loop
    (asyncio or uvloop). ``public_address`` is the (host, port) to advertise in
    Via and Contact when behind NAT; a port of None advertises the bound port.
    ``max_tcp_connections`` bounds TCP and WebSocket connections together.
    """

    def __init__(
        self,
        on_message: OnMessage,
        *,
        on_send_error: OnSendError | None = None,
        on_flow_lost: OnFlowLost | None = None,
        max_message_size: int = 65536,
        max_headers: int = 256,
        tcp_idle_timeout: float = 300.0,
        max_tcp_connections: int = 10000,
        tcp_connect_timeout: float = 10.0,
        public_address: tuple[str, int | None] | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_send_error = on_send_error
        self._on_flow_lost = on_flow_lost
        self.max_message_size = max_message_size
        self.max_headers = max_headers
        self.tcp_idle_timeout = tcp_idle_timeout
        self.max_tcp_connections = max_tcp_connections
        self.tcp_connect_timeout = tcp_connect_timeout
        self.public_address = public_address
        self.stats = TransportStats()
        self._loop = asyncio.get_running_loop()
        self._connection_ids = itertools.count(1)
        self._udp: list[_UdpEndpoint] = []
        self._udp_by_family: dict[socket.AddressFamily, _UdpEndpoint] = {}
        self._servers: list[asyncio.Server] = []
        self._bound: dict[str, list[tuple[str, int]]] = {}
        self._advertised: dict[str, tuple[str, int]] = {}
        self._connections: dict[int, _StreamConnection] = {}
        self._by_address: dict[tuple[str, int], _StreamConnection] = {}
        self._websockets: dict[int, WebSocketFlow] = {}
        self._websocket_by_address: dict[tuple[str, int], WebSocketFlow] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # listening

    async def listen_udp(self, host: str, port: int) -> None:
        sock = await self._bind(host, port, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):  # capped at rmem_max; a smaller one still works
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_RCVBUF)
        family = socket.AddressFamily(sock.family)
        endpoint = _UdpEndpoint(self)
        await self._loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
        self._udp.append(endpoint)
        self._udp_by_family.setdefault(family, endpoint)
        self._record_bound("udp", sock)

    async def listen_tcp(self, host: str, port: int) -> None:
        sock = await self._bind(host, port, socket.SOCK_STREAM)
        server = await self._loop.create_server(
            lambda: _StreamConnection(self, "tcp", None), sock=sock, backlog=1024
        )
        self._servers.append(server)
        self._record_bound("tcp", sock)

    async def _bind(self, host: str, port: int, kind: socket.SocketKind) -> socket.socket:
        infos = await self._loop.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
        family, socktype, proto, _, address = infos[0]
        sock = socket.socket(family, socktype, proto)
        try:
            if family == socket.AF_INET6:
                # Listening on "::" and "0.0.0.0" separately, each with its own family.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def open_websocket(
        self,
        scheme: str,
        remote: tuple[str, int],
        local: tuple[str, int],
        write: WriteMessage,
        close: CloseConnection,
    ) -> WebSocketFlow | None:
        """A WebSocket connection the HTTP server accepted on ``local`` from ``remote``;
        ``scheme`` is "ws" or "wss". None when at the connection limit: refuse it."""
        if self._closed or self._connection_count() >= self.max_tcp_connections:
            self.stats.tcp_refused += 1
            return None
        transport = scheme.lower()
        host, port = remote
        flow = WebSocketFlow(
            self, Peer(transport, host, port, next(self._connection_ids)), write, close
        )
        self._websockets[flow.id] = flow
        # The newest connection from an address wins: the one before is on its way out.
        self._websocket_by_address[(host, port)] = flow
        if local not in self._bound.get(transport, ()):
            self._bound.setdefault(transport, []).append(local)
        # The HTTP server knows its address only once a client connects to it.
        self._advertised.setdefault(transport, local)
        self.stats.ws_connections += 1
        self.stats.ws_opened += 1
        return flow

    def _connection_count(self) -> int:
        return len(self._connections) + len(self._websockets)

    def _websocket_lost(self, flow: WebSocketFlow) -> None:
        if self._websockets.pop(flow.id, None) is None:
            return
        key = (flow.peer.host, flow.peer.port)
        if self._websocket_by_address.get(key) is flow:
            del self._websocket_by_address[key]
        self.stats.ws_connections -= 1
        _log.debug("ws: connection %d from %s closed", flow.id, flow.peer)
        if self._on_flow_lost is not None:
            # Later, like send errors: the adapter calling us must not be re-entered.
            self._loop.call_soon(self._report_flow_lost, self._on_flow_lost, flow.peer)

    @staticmethod
    def _report_flow_lost(callback: OnFlowLost, peer: Peer) -> None:
        try:
            callback(peer)
        except Exception:
            _log.exception("on_flow_lost failed")

    def _record_bound(self, transport: str, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        self._bound.setdefault(transport, []).append((host, port))
        if transport not in self._advertised:
            if host in ("0.0.0.0", "::"):
                host = primary_ip(socket.AddressFamily(sock.family))
            self._advertised[transport] = (host, port)

    def local_addresses(self, transport: str) -> list[tuple[str, int]]:
        """The (host, port) pairs bound for "udp" or "tcp", in the order listened on (for
        "ws" and "wss": where WebSocket clients have connected so far)."""
        return list(self._bound.get(transport, ()))

    def sent_by(self, transport: str) -> tuple[str, int]:
        """The host and port to put in our Via sent-by and Contact for ``transport``.

        ``public_address`` when configured, else the first address bound for that
        transport (a wildcard bind advertises the host's primary address).
        """
        bound = self._advertised.get(transport)
        if self.public_address is not None:
            host, port = self.public_address
            if port is None:
                if bound is None:
                    raise LookupError(f"not listening on {transport}")
                port = bound[1]
            return host, port
        if bound is None:
            raise LookupError(f"not listening on {transport}")
        return bound

    # receiving

    def _receive(self, data: bytes, peer: Peer, source: _Source, *, whole: bool = False) -> None:
        try:
            message = parse_message(
                data, max_size=self.max_message_size, max_headers=self.max_headers, whole=whole
            )
        except MessageRejected as exc:
            self._reject(exc, exc.request, peer, source)
            return
        if isinstance(message, Request):
            try:
                self._stamp_via(message, peer)
            except SipSyntaxError as exc:
                self._reject(exc, message, peer, source)
                return
        self.stats.received += 1
        try:
            self._on_message(message, peer)
        except Exception:
            self.stats.callback_errors += 1
            _log.exception("on_message failed for a message from %s", peer)

    def _reject(
        self,
        exc: SipSyntaxError,
        request: Request | None,
        peer: Peer,
        source: _Source,
    ) -> None:
        # RFC 3261 section 17: an ACK is never answered.
        if request is None or request.method == "ACK":
            self.stats.dropped += 1
            _log.debug("dropped unparsable message from %s: %s", peer, exc)
            return
        status = getattr(exc, "status", 400)
        reason = getattr(exc, "reason", None)
        response = make_response(request, status, reason)
        _add_to_tag(response)
        data = bytes(response)
        self.stats.rejected += 1
        # Sent back to the source itself: the Via may be what is broken.
        source.reply(data, peer)
        _log.debug("answered %d to a malformed request from %s: %s", status, peer, exc)

    @staticmethod
    def _stamp_via(request: Request, peer: Peer) -> None:
        """Add received and rport to the top Via (RFC 3261 section 18.2.1, RFC 3581)."""
        vias = request.vias
        if not vias:
            raise SipSyntaxError("missing Via header")
        via = vias[0]
        wants_rport = "rport" in via.params and via.params["rport"] is None
        if not wants_rport and _same_ip(via.host, peer.host):
            return
        # RFC 3581 section 4: with rport, received is added even when it equals sent-by.
        params = {**via.params, "received": peer.host}
        if wants_rport:
            params["rport"] = str(peer.port)
        # A new Via: the parsed one is shared with whoever read the header before.
        stamped = Via(via.transport, via.host, via.port, params, via.protocol)
        lines = request.headers.values("Via")
        elements = split_comma_list(lines[0])
        elements[0] = str(stamped)
        request.headers.replace_first("Via", ", ".join(elements))
        # What the new text parses to (format_via round-trips), saving the next reader a parse.
        request.headers._remember("Via", [stamped, *vias[1:]])

    # sending

    def response_destination(self, via: Via, source: Peer) -> Peer:
        """Where a response whose top Via is ``via`` goes, its request having come from
        ``source`` (RFC 3261 18.2.2).

        Streams: back on the request's connection (``connection_id`` kept), else to the
        Via received address and sent-by port. UDP: to received and rport when the top
        Via has them (RFC 3581), else to its sent-by host and port (default 5060).
        """
        params = via.params
        host = params.get("received") or via.host
        port = via.port or DEFAULT_PORTS.get(source.transport, 5060)
        if source.transport == "udp":
            rport = params.get("rport")
            if rport and rport.isdigit() and 0 < int(rport) < 65536:
                port = int(rport)
            return Peer("udp", host, port)
        return Peer(source.transport, host, port, source.connection_id)

    def send(self, message: Message, peer: Peer) -> None:
        """Send without blocking; failures go to ``on_send_error`` (see the module doc).

        A Response is routed with :meth:`response_destination`, ``peer`` being where its
        request came from; a Request goes to ``peer`` itself.
        """
        if isinstance(message, Response):
            try:
                peer = self.response_destination(message.top_via, peer)
            except SipSyntaxError as exc:
                self._send_failed(message, peer, exc)
                return
        self._send_data(message, bytes(message), peer)

    def send_data(self, data: bytes, peer: Peer) -> None:
        """Send ``data``, an ACK as serialized, to ``peer``. A failure is counted, not
        reported: the next retransmission of the response it acknowledges asks again."""
        self._send_data(None, data, peer)

    def _send_data(self, message: Message | None, data: bytes, peer: Peer) -> None:
        if peer.transport == "udp":
            self._send_udp(message, data, peer)
        elif peer.transport == "tcp":
            self._send_stream(message, data, peer)
        elif peer.connection_bound:
            self._send_websocket(message, data, peer)
        else:
            self._send_failed(message, peer, ValueError(f"no {peer.transport} transport"))

    def send_again(self, data: bytes, request: Request, source: Peer) -> None:
        """Send ``data``, a final response sent before over UDP, again for ``request``, its
        request retransmitted from ``source``. A failure is counted, not reported: the
        request's next retransmission tries again."""
        try:
            destination = self.response_destination(request.top_via, source)
        except SipSyntaxError as exc:
            self._send_failed(None, source, exc)
            return
        self._send_udp(None, data, destination)

    def _send_failed(self, message: Message | None, peer: Peer, exc: Exception) -> None:
        self.stats.send_errors += 1
        _log.debug("send to %s failed: %s", peer, exc)
        if self._on_send_error is not None and message is not None:
            self._loop.call_soon(self._report_send_error, self._on_send_error, message, peer, exc)

    @staticmethod
    def _report_send_error(
        callback: OnSendError, message: Message, peer: Peer, exc: Exception
    ) -> None:
        try:
            callback(message, peer, exc)
        except Exception:
            _log.exception("on_send_error failed")

    def _send_udp(self, message: Message | None, data: bytes, peer: Peer) -> None:
        if len(data) > _MAX_DATAGRAM:
            self._send_failed(message, peer, ValueError(f"{len(data)} bytes exceed a datagram"))
            return
        family = _ip_family(peer.host)
        if family is None:
            self._spawn(self._resolve_and_send_udp(message, data, peer))
            return
        endpoint = self._udp_by_family.get(family)
        if endpoint is None:
            self._send_failed(message, peer, OSError(f"no UDP socket for {peer.host}"))
            return
        endpoint.sendto(data, (peer.host, peer.port))

    async def _resolve_and_send_udp(self, message: Message | None, data: bytes, peer: Peer) -> None:
        try:
            infos = await self._loop.getaddrinfo(peer.host, peer.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            self._send_failed(message, peer, exc)
            return
        for family, _, _, _, address in infos:
            endpoint = self._udp_by_family.get(socket.AddressFamily(family))
            if endpoint is not None:
                endpoint.sendto(data, (str(address[0]), int(address[1])))
                return
        self._send_failed(message, peer, OSError(f"no UDP socket for {peer.host}"))

    def _send_websocket(self, message: Message | None, data: bytes, peer: Peer) -> None:
        # A peer known by its connection is reached over that one only, never over a later
        # connection that happens to come from the same address.
        if peer.connection_id is not None:
            flow = self._websockets.get(peer.connection_id)
        else:
            flow = self._websocket_by_address.get((peer.host, peer.port))
        if flow is None or flow.closed:
            self._send_failed(message, peer, ConnectionResetError("WebSocket connection gone"))
        elif flow.write(data):
            self.stats.sent += 1
        else:
            self._send_failed(message, peer, ConnectionResetError("WebSocket connection closed"))

    def _send_stream(self, message: Message | None, data: bytes, peer: Peer) -> None:
        connection = None
        if peer.connection_id is not None:
            connection = self._connections.get(peer.connection_id)
        if connection is None or connection.closed:
            connection = self._by_address.get((peer.host, peer.port))
        if connection is not None and not connection.closed:
            if connection.transport is None:
                if len(connection.pending) >= _MAX_PENDING:
                    self._send_failed(message, peer, BlockingIOError("connection queue full"))
                else:
                    connection.pending.append((message, peer, data))
            elif connection.write_raw(data):
                self.stats.sent += 1
            else:
                self._send_failed(message, peer, ConnectionResetError("connection closed"))
            return
        if self._connection_count() >= self.max_tcp_connections:
            self._send_failed(message, peer, ConnectionError("too many TCP connections"))
            return
        connection = _StreamConnection(self, peer.transport, (peer.host, peer.port))
        connection.pending.append((message, peer, data))
        self._connections[connection.id] = connection
        self._by_address[(peer.host, peer.port)] = connection
        self._spawn(self._connect(connection, peer.host, peer.port))

    async def _connect(self, connection: _StreamConnection, host: str, port: int) -> None:
        try:
            async with asyncio.timeout(self.tcp_connect_timeout):
                await self._loop.create_connection(lambda: connection, host, port)
        except Exception as exc:  # refused, unreachable, timed out, unresolvable, bad port
            self._forget(connection)
            connection.closed = True
            pending, connection.pending = connection.pending, []
            for message, peer, _ in pending:
                self._send_failed(message, peer, exc)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # connection bookkeeping

    def _connection_made(self, connection: _StreamConnection, transport: asyncio.Transport) -> None:
        address = transport.get_extra_info("peername")
        host, port = str(address[0]), int(address[1])
        connection.peer = Peer(connection.name, host, port, connection.id)
        if connection.closed:
            # close() ran while this outbound connection was being set up.
            transport.abort()
            return
        if connection.key is None:
            # Inbound.
            if self._connection_count() >= self.max_tcp_connections:
                self.stats.tcp_refused += 1
                connection.closed = True
                transport.abort()
                return
            connection.key = (host, port)
            self._connections[connection.id] = connection
            self._by_address.setdefault(connection.key, connection)
        connection.established = True
        self.stats.tcp_opened += 1
        self.stats.tcp_connections += 1
        connection.start_idle_timer()
        pending, connection.pending = connection.pending, []
        for message, peer, data in pending:
            if connection.write_raw(data):
                self.stats.sent += 1
            else:
                self._send_failed(message, peer, ConnectionResetError("connection closed"))

    def _connection_lost(self, connection: _StreamConnection, exc: Exception | None) -> None:
        self._forget(connection)
        connection.close()
        if connection.established:
            connection.established = False
            self.stats.tcp_connections -= 1
        _log.debug("tcp: connection %d to %s closed: %s", connection.id, connection.peer, exc)

    def _forget(self, connection: _StreamConnection) -> None:
        self._connections.pop(connection.id, None)
        if connection.key is not None and self._by_address.get(connection.key) is connection:
            del self._by_address[connection.key]

    # shutdown

    async def close(self) -> None:
        """Stop listening, close every socket and connection, cancel pending connects."""
        self._closed = True
        for server in self._servers:
            server.close()
        for connection in list(self._connections.values()):
            connection.close()
        for flow in list(self._websockets.values()):
            flow.close()
        for endpoint in self._udp:
            if endpoint.transport is not None:
                endpoint.transport.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._udp.clear()
        self._udp_by_family.clear()
        # Let connection_lost callbacks run before the loop may be closed.
        await asyncio.sleep(0)
