"""Minimal SIP user agents for benchmarks, in this process: a desk phone over UDP, and a
browser running the web app over the SIP WebSocket (/sip, RFC 7118).

A ``UserAgent`` registers (digest, or the web app's access token as a Bearer credential
on every request, RFC 8898, as JsSIP's ``authorization_jwt`` sends it), places calls
(INVITE, answering a digest challenge, then ACK and BYE) and answers the calls the server
sends it: 180 Ringing (unless told not to ring), then 200 with the SDP its ``answer``
callback makes; 200 to BYE and to anything else. Arrival times are time.monotonic() when
the channel got the bytes (for the WebSocket: when the ``websockets`` reader handed the
message over), so that a benchmark can time a call from either end. Messages are parsed
with the server's own parser (nuage.sip). Over UDP, requests are retransmitted as RFC
3261's timers A and E say; over the WebSocket, never.

The SDP of each kind of device is here too: ``browser_offer`` is shaped like Chrome's
(ICE credentials and a host candidate, DTLS fingerprint, setup:actpass, rtcp-mux, BUNDLE,
Opus, RED, G.722, G.711, telephone-event, header extensions, SSRC), ``phone_offer`` like
a desk phone's (RTP/AVP, G.722, G.711, telephone-event).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.server import DOMAIN
from nuage.sip.digest import authorization_for
from nuage.sip.message import Request, Response, make_response
from nuage.sip.parser import parse_message

T1, T2 = 0.5, 4.0  # RFC 3261 17.1.1.1 (seconds)
ALLOW = "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY"
_CLOCK = time.monotonic


# --- the SDP of each kind of device ----------------------------------------------------


def browser_offer(
    session: int, media: tuple[str, int], fingerprint: str, ice: tuple[str, str]
) -> str:
    """A WebRTC offer as Chrome makes it for one microphone, after ICE gathering (JsSIP
    sends the INVITE then): one host candidate at ``media``; ``session`` is o='s session
    id (the server keeps it, so the callee can tell which call reached it)."""
    host, port = media
    ufrag, pwd = ice
    ssrc, stream, track = 1 + session % 4_000_000_000, secrets.token_hex(8), secrets.token_hex(8)
    return (
        f"v=0\r\no=- {session} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\n"
        f"a=msid-semantic: WMS {stream}\r\n"
        f"m=audio {port} UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
        f"c=IN IP4 {host}\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
        f"a=candidate:1 1 udp 2122260223 {host} {port} typ host generation 0 network-id 1\r\n"
        f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=ice-options:trickle\r\n"
        f"a=fingerprint:sha-256 {fingerprint}\r\na=setup:actpass\r\na=mid:0\r\n"
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n"
        "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
        "\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
        f"a=sendrecv\r\na=msid:{stream} {track}\r\na=rtcp-mux\r\na=rtcp-rsize\r\n"
        "a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n"
        "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
        "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n"
        "a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n"
        "a=rtpmap:126 telephone-event/8000\r\n"
        f"a=ssrc:{ssrc} cname:{secrets.token_hex(8)}\r\na=ssrc:{ssrc} msid:{stream} {track}\r\n"
    )


def browser_answer(
    mid: str, media: tuple[str, int], fingerprint: str, ice: tuple[str, str], codec: int = 0
) -> str:
    """A browser's answer to the server's WebRTC offer: DTLS client (setup:active), one
    host candidate at ``media``, the offer's ``mid`` bundled, one codec."""
    host, port = media
    ufrag, pwd = ice
    names = {0: "PCMU/8000", 8: "PCMA/8000", 9: "G722/8000", 111: "opus/48000/2"}
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        f"a=group:BUNDLE {mid}\r\n"
        f"m=audio {port} UDP/TLS/RTP/SAVPF {codec}\r\nc=IN IP4 {host}\r\n"
        f"a=mid:{mid}\r\na=rtpmap:{codec} {names[codec]}\r\na=sendrecv\r\na=rtcp-mux\r\n"
        f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"
        f"a=fingerprint:sha-256 {fingerprint}\r\na=setup:active\r\n"
        f"a=candidate:1 1 udp 2130706431 {host} {port} typ host\r\n"
    )


def phone_offer(session: int, media: tuple[str, int]) -> str:
    """A desk phone's offer (RTP/AVP: G.722, G.711, telephone-event); ``session`` as in
    ``browser_offer``."""
    host, port = media
    return (
        f"v=0\r\no=phone {session} 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 9 0 8 101\r\na=rtpmap:9 G722/8000\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    )


def phone_answer(media: tuple[str, int]) -> str:
    host, port = media
    return (
        f"v=0\r\no=phone 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


def sdp_attribute(sdp: str, name: str) -> str:
    """The value of the first ``a=name:...`` line; ValueError without one."""
    found = re.search(rf"^a={name}:(.+?)\r?$", sdp, re.MULTILINE)
    if found is None:
        raise ValueError(f"no a={name} in the SDP")
    return found.group(1).strip()


def sdp_session(sdp: str) -> int | None:
    """The session id of the o= line."""
    for line in sdp.splitlines():
        if line.startswith("o="):
            fields = line.split()
            if len(fields) > 1 and fields[1].isdigit():
                return int(fields[1])
    return None


# --- how a user agent reaches the server -----------------------------------------------


class Channel(abc.ABC):
    """One UDP socket, or one WebSocket; ``deliver(data, arrival)`` gets what comes."""

    reliable: bool

    def __init__(self) -> None:
        self.deliver: Callable[[bytes, float], None] = lambda data, at: None

    @property
    @abc.abstractmethod
    def via(self) -> str:
        """The sent-by part of our Via (``SIP/2.0/UDP host:port;rport``)."""

    @abc.abstractmethod
    def contact(self, user: str) -> str: ...

    @abc.abstractmethod
    async def send(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class UdpChannel(Channel, asyncio.DatagramProtocol):
    """A desk phone's socket on 127.0.0.1; everything goes to the server's SIP port."""

    reliable = False

    def __init__(self, server: tuple[str, int]) -> None:
        super().__init__()
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        assert self.transport is not None
        self.address = self.transport.get_extra_info("sockname")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.deliver(data, _CLOCK())

    @property
    def via(self) -> str:
        return f"SIP/2.0/UDP {self.address[0]}:{self.address[1]};rport"

    def contact(self, user: str) -> str:
        return f"sip:{user}@{self.address[0]}:{self.address[1]}"

    async def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.server)

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class WebSocketChannel(Channel):
    """The web app's WebSocket to /sip (subprotocol ``sip``), named by an unresolvable
    ``.invalid`` host in Via and Contact as JsSIP does; one SIP message per text message."""

    reliable = True

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.host = f"{secrets.token_hex(6)}.invalid"
        self._token = secrets.token_hex(4)
        self._connection: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        self._connection = await connect(self.url, subprotocols=["sip"])  # type: ignore[list-item]
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._connection is not None
        with contextlib.suppress(ConnectionClosed):
            async for data in self._connection:
                self.deliver(data.encode() if isinstance(data, str) else bytes(data), _CLOCK())

    @property
    def via(self) -> str:
        return f"SIP/2.0/WSS {self.host}"

    def contact(self, user: str) -> str:
        return f"sip:{self._token}@{self.host};transport=ws"

    async def send(self, data: bytes) -> None:
        assert self._connection is not None
        try:
            await self._connection.send(data.decode())
        except ConnectionClosed:
            if not self._closing:  # answers to the server's last requests may come late
                raise

    async def close(self) -> None:
        self._closing = True
        if self._connection is not None:
            await self._connection.close()
        if self._reader is not None:
            self._reader.cancel()


# --- the user agent --------------------------------------------------------------------


@dataclass
class Placed:
    """A call this agent placed, with the times (time.monotonic()) of its steps."""

    call_id: str
    target: str  # the Request-URI
    tag: str  # our From tag
    invited: float  # the first INVITE written
    authorized: float | None = None  # the INVITE with credentials, after a challenge
    ringing: float | None = None  # 180 received (the first one)
    answered: float | None = None  # the final response received
    status: int = 0
    retransmissions: int = 0
    seq: int = 1
    answer: Response | None = None  # the 2xx


@dataclass
class Offered:
    """A call the server sent this agent."""

    request: Request
    arrived: float
    responses: list[bytes] = field(default_factory=list)  # sent so far, resent on repeats
    ended: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Waiting:
    """Responses of the current client transaction of one Call-ID."""

    queue: asyncio.Queue[tuple[Response, float]] = field(default_factory=asyncio.Queue)


class UserAgent:
    """One account on one channel; ``password`` answers digest challenges, ``bearer`` is
    the app's access token (sent on every request, never challenged). ``answer(request,
    arrival)`` makes the SDP answer to an offer the server sends (required to take
    calls; ValueError refuses it with 488); ``answered(offered)`` is called once its 200
    is written; ``ring``: send 180 Ringing before the 200."""

    def __init__(
        self,
        channel: Channel,
        user: str,
        *,
        password: str | None = None,
        bearer: str | None = None,
        answer: Callable[[Request, float], str] | None = None,
        answered: Callable[[Offered], None] | None = None,
        ring: bool = True,
        agent: str = "Nuage bench",
    ) -> None:
        self.channel = channel
        self.user = user
        self.password = password
        self.bearer = bearer
        self.answer = answer
        self.answered = answered
        self.ring = ring
        self.agent = agent
        self.contact = channel.contact(user)
        self.offered: dict[str, Offered] = {}
        self.failures = 0  # offers ``answer`` refused (it raised): 488 sent
        self._waiting: dict[str, _Waiting] = {}
        self._acks: dict[str, bytes] = {}  # per call placed and answered: its ACK
        self._branches = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._registration = secrets.token_hex(10)
        channel.deliver = self._received

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.channel.close()

    # -- messages -------------------------------------------------------------------------

    def _branch(self) -> str:
        return f"z9hG4bK{secrets.token_hex(4)}{next(self._branches)}"

    def _request(
        self,
        method: str,
        uri: str,
        *,
        call_id: str,
        seq: int,
        tag: str,
        to: str,
        branch: str,
        headers: tuple[str, ...] = (),
        body: str = "",
    ) -> bytes:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: {self.channel.via};branch={branch}",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{DOMAIN}>;tag={tag}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {seq} {method}",
            *headers,
        ]
        if self.bearer is not None and method != "ACK":
            lines.append(f"Authorization: Bearer {self.bearer}")
        if body:
            lines.append("Content-Type: application/sdp")
        lines += [f"User-Agent: {self.agent}", f"Content-Length: {len(body.encode())}"]
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def _received(self, data: bytes, arrival: float) -> None:
        try:
            message = parse_message(data, whole=self.channel.reliable)
        except ValueError:
            return  # a keep-alive CRLF, or garbage: nothing to do
        if isinstance(message, Request):
            self._spawn(self._on_request(message, arrival))
            return
        call_id = message.call_id
        ack = self._acks.get(call_id)
        if ack is not None and message.cseq.method == "INVITE" and message.status < 300:
            self._spawn(self.channel.send(ack))  # a repeated 2xx: its ACK was lost
            return
        waiting = self._waiting.get(call_id)
        if waiting is not None:
            waiting.queue.put_nowait((message, arrival))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _transaction(
        self,
        data: bytes,
        call_id: str,
        seq: int,
        method: str,
        *,
        timeout: float,  # noqa: ASYNC109
        provisional: Callable[[Response, float], None] | None = None,
    ) -> tuple[Response, float, int]:
        """Send ``data`` (retransmitted over UDP) until its final response: that response,
        its arrival, and how many times it was sent again."""
        waiting = self._waiting.setdefault(call_id, _Waiting())
        deadline = _CLOCK() + timeout
        interval, resend_at = T1, _CLOCK() + T1
        retransmissions = 0
        await self.channel.send(data)
        retransmit = not self.channel.reliable
        while True:
            now = _CLOCK()
            if now >= deadline:
                raise TimeoutError(f"no final response to {method} {call_id}")
            wait = min(deadline, resend_at) - now if retransmit else deadline - now
            try:
                response, arrival = await asyncio.wait_for(waiting.queue.get(), wait)
            except TimeoutError:
                if retransmit and _CLOCK() >= resend_at:
                    await self.channel.send(data)
                    retransmissions += 1
                    interval = min(2 * interval, T2) if method != "INVITE" else 2 * interval
                    resend_at = _CLOCK() + interval
                continue
            if response.cseq.seq != seq or response.cseq.method != method:
                continue  # an earlier transaction's
            if response.status < 200:
                if method == "INVITE":
                    retransmit = False  # timer A stops on a provisional response
                if provisional is not None:
                    provisional(response, arrival)
                continue
            return response, arrival, retransmissions

    # -- registration and calls -------------------------------------------------------------

    async def register(self, expires: int = 600) -> None:
        """REGISTER this agent's contact (answering a digest challenge); raises unless 200."""
        uri = f"sip:{DOMAIN}"
        tag = secrets.token_hex(4)
        headers: tuple[str, ...] = (
            f'Contact: <{self.contact}>;reg-id=1;+sip.instance="<urn:uuid:{self._registration}>"',
            f"Expires: {expires}",
            f"Allow: {ALLOW}",
        )
        to = f"<sip:{self.user}@{DOMAIN}>"
        call_id, seq = self._registration, 1
        try:
            while True:
                data = self._request(
                    "REGISTER",
                    uri,
                    call_id=call_id,
                    seq=seq,
                    tag=tag,
                    to=to,
                    branch=self._branch(),
                    headers=headers,
                )
                response, _, _ = await self._transaction(
                    data, call_id, seq, "REGISTER", timeout=10.0
                )
                if response.status == 401 and self.password is not None and seq == 1:
                    credentials = authorization_for(
                        response.headers.values("WWW-Authenticate"),
                        "REGISTER",
                        uri,
                        self.user,
                        self.password,
                    )
                    headers = (*headers, f"Authorization: {credentials}")
                    seq += 1
                    continue
                if response.status != 200:
                    raise RuntimeError(f"REGISTER of {self.user} got {response.status}")
                return
        finally:
            self._waiting.pop(call_id, None)

    async def invite(self, user: str, offer: str, timeout: float = 30.0) -> Placed:  # noqa: ASYNC109
        """Call ``user`` (an extension of the domain) with ``offer``; returns once the call
        got its final response (a 2xx is acknowledged: hang up with ``bye``)."""
        uri = f"sip:{user}@{DOMAIN}"
        placed = Placed(secrets.token_hex(10), uri, secrets.token_hex(4), 0.0)
        headers: tuple[str, ...] = (
            f"Contact: <{self.contact}>",
            f"Allow: {ALLOW}",
            "Supported: ice,replaces,outbound",
        )

        def provisional(response: Response, arrival: float) -> None:
            if response.status == 180 and placed.ringing is None:
                placed.ringing = arrival

        try:
            while True:
                branch = self._branch()
                data = self._request(
                    "INVITE",
                    uri,
                    call_id=placed.call_id,
                    seq=placed.seq,
                    tag=placed.tag,
                    to=f"<{uri}>",
                    branch=branch,
                    headers=headers,
                    body=offer,
                )
                if placed.seq == 1:
                    placed.invited = _CLOCK()
                else:
                    placed.authorized = _CLOCK()
                response, arrival, repeats = await self._transaction(
                    data,
                    placed.call_id,
                    placed.seq,
                    "INVITE",
                    timeout=timeout,
                    provisional=provisional,
                )
                placed.retransmissions += repeats
                if response.status >= 300:
                    # Acknowledged in the INVITE's transaction (same branch, RFC 3261 17.1.1.3).
                    ack = self._request(
                        "ACK",
                        uri,
                        call_id=placed.call_id,
                        seq=placed.seq,
                        tag=placed.tag,
                        to=str(response.headers.get("To")),
                        branch=branch,
                    )
                    await self.channel.send(ack)
                    if response.status == 401 and self.password is not None and placed.seq == 1:
                        credentials = authorization_for(
                            response.headers.values("WWW-Authenticate"),
                            "INVITE",
                            uri,
                            self.user,
                            self.password,
                        )
                        headers = (*headers, f"Authorization: {credentials}")
                        placed.seq += 1
                        continue
                placed.status, placed.answered = response.status, arrival
                if response.status < 300:
                    placed.answer = response
                    await self._ack(placed, response)
                return placed
        finally:
            if placed.answer is None:
                self._waiting.pop(placed.call_id, None)

    def _in_dialog(self, placed: Placed, method: str, seq: int) -> bytes:
        answer = placed.answer
        assert answer is not None
        target = str(answer.contacts[0].uri) if answer.contacts else placed.target
        routes = tuple(f"Route: {route}" for route in reversed(answer.record_routes))
        return self._request(
            method,
            target,
            call_id=placed.call_id,
            seq=seq,
            tag=placed.tag,
            to=str(answer.headers.get("To")),
            branch=self._branch(),
            headers=routes,
        )

    async def _ack(self, placed: Placed, answer: Response) -> None:
        ack = self._in_dialog(placed, "ACK", answer.cseq.seq)
        self._acks[placed.call_id] = ack
        await self.channel.send(ack)

    async def bye(self, placed: Placed, timeout: float = 10.0) -> int:  # noqa: ASYNC109
        """Hang up an answered call; the BYE's final status."""
        seq = placed.seq + 1
        try:
            response, _, repeats = await self._transaction(
                self._in_dialog(placed, "BYE", seq), placed.call_id, seq, "BYE", timeout=timeout
            )
        finally:
            self._waiting.pop(placed.call_id, None)
            self._acks.pop(placed.call_id, None)
        placed.retransmissions += repeats
        return response.status

    # -- requests from the server -----------------------------------------------------------

    async def _respond(self, request: Request, status: int, *, body: str = "") -> bytes:
        response = make_response(request, status)
        if request.to.tag is None and status > 100:
            offered = self.offered.get(request.call_id)
            tag = offered.request.call_id[:8] if offered is not None else secrets.token_hex(4)
            response.headers.set("To", f"{response.headers.get('To')};tag=u{tag}")
        if request.method == "INVITE" and 100 < status < 300:
            response.headers.add("Contact", f"<{self.contact}>")
            response.headers.add("Allow", ALLOW)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body.encode()
        data = bytes(response)
        await self.channel.send(data)
        return data

    async def _on_request(self, request: Request, arrival: float) -> None:
        method, call_id = request.method, request.call_id
        if method == "ACK":
            return
        if method == "INVITE" and request.to.tag is None:
            offered = self.offered.get(call_id)
            if offered is not None:  # a retransmission: the same answers again
                for data in offered.responses:
                    await self.channel.send(data)
                return
            await self._offer(request, arrival)
            return
        if method == "CANCEL":
            await self._respond(request, 200)
            offered = self.offered.get(call_id)
            if offered is not None and not offered.ended.is_set():
                offered.ended.set()
                await self._respond(offered.request, 487)
            return
        await self._respond(request, 200)  # BYE, a re-INVITE's offer is not expected
        if method == "BYE":
            offered = self.offered.pop(call_id, None)
            if offered is not None:
                offered.ended.set()

    async def _offer(self, request: Request, arrival: float) -> None:
        offered = self.offered[request.call_id] = Offered(request, arrival)
        if self.answer is None:
            offered.responses.append(await self._respond(request, 480))
            return
        if self.ring:
            offered.responses.append(await self._respond(request, 180))
        try:
            answer = self.answer(request, arrival)
        except ValueError:
            self.failures += 1
            offered.responses.append(await self._respond(request, 488))
            return
        offered.responses.append(await self._respond(request, 200, body=answer))
        if self.answered is not None:
            self.answered(offered)


async def udp_agent(server: tuple[str, int], user: str, **options: Any) -> UserAgent:
    """A desk phone: a UserAgent on a fresh UDP socket, registered."""
    channel = UdpChannel(server)
    await channel.open()
    agent = UserAgent(channel, user, **options)
    await agent.register()
    return agent


async def websocket_agent(url: str, user: str, **options: Any) -> UserAgent:
    """The web app's phone: a UserAgent on a fresh WebSocket, registered."""
    channel = WebSocketChannel(url)
    await channel.open()
    agent = UserAgent(channel, user, **options)
    await agent.register()
    return agent
