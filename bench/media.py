"""Concurrent anchored calls with RTP both ways, and the server's memory per call.

sipp's rtp_stream cannot tell how many packets arrived, so this benchmark plays both
ends itself, in this process, over raw UDP sockets:

- the carrier (127.0.0.2, recognised as the trunk, so no digest) places N calls to the
  company number with a minimal hand-written INVITE / ACK / BYE;
- user 1001 is registered once by sipp (register.xml, digest auth) from a port that this
  process then binds to play the phone: it answers every INVITE Nuage forks to it with
  200 and accepts the BYE.

Every call's two legs are anchored by Nuage (its SDP points each side at its own RTP
ports). Once all N calls are up, each side sends 172-byte G.711 packets (20 ms) at 50/s
per call to the port Nuage gave it, and counts what it receives. All carrier legs share
one RTP socket and all phone legs another: Nuage latches each leg to that source, and the
generator stays cheap enough not to be the bottleneck. Loss = 1 - received / sent over a
window that starts after a warm-up packet per leg (latching) and ends after a drain.

The baseline ("direct") is the same generator with the two sockets sending to each
other, without Nuage: what loopback and the generator lose on their own.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.peers.ports import free_port
from tests.peers.sipp import account_row, run_sipp

from bench.server import (
    CALLEE,
    CARRIER_HOST,
    COMPANY_NUMBER,
    DOMAIN,
    BenchServer,
    bench_server,
    sip_password,
)
from bench.stats import median, percentile

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
PHONE_HOST = "127.0.0.1"
PACKET = struct.pack("!BBHII", 0x80, 0, 1, 160, 0x1234) + bytes(160)
PACKETS_PER_SECOND = 50
# Each 20 ms period is sent as this many slices, spread over the period, as independent
# phones would: one burst of 2 N packets would overflow socket buffers on its own.
SLICES = 10
DRAIN_SECONDS = 1.0
SETUP_RATE = 100.0  # calls/s while establishing: well below the setup-rate limit
SOCKET_BUFFER = 8 * 1024 * 1024
_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
}


# --- a minimal SIP message model, enough for one well-behaved peer ----------------------


@dataclass
class _Message:
    first_line: str
    headers: list[tuple[str, str]]
    body: str

    def get(self, name: str) -> str:
        for key, value in self.headers:
            if key == name:
                return value
        return ""

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def is_request(self) -> bool:
        return not self.first_line.startswith("SIP/2.0")

    @property
    def status(self) -> int:
        return int(self.first_line.split()[1])

    @property
    def method(self) -> str:
        return self.first_line.split()[0] if self.is_request else self.get("cseq").split()[1]


def _parse(data: bytes) -> _Message:
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        # Via and Contact may come comma-separated: split them so each hop is kept.
        values = [value.strip()]
        if _COMPACT.get(name, name) == "via":
            values = [v.strip() for v in value.split(",")]
        headers += [(_COMPACT.get(name, name), v) for v in values]
    return _Message(lines[0], headers, body)


def _media_address(sdp: str) -> tuple[str, int] | None:
    host, port = "", 0
    for line in sdp.splitlines():
        if line.startswith("c=IN IP4 "):
            host = line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return (host, port) if host and port else None


def _sdp(host: str, port: int) -> str:
    return (
        f"v=0\r\no=bench 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


def _serialize(first_line: str, headers: list[tuple[str, str]], body: str = "") -> bytes:
    lines = [first_line, *(f"{name}: {value}" for name, value in headers)]
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _reply(
    request: _Message, status: str, to_tag: str, extra: list[tuple[str, str]], body: str = ""
) -> bytes:
    to = request.get("to")
    if ";tag=" not in to:
        to += f";tag={to_tag}"
    headers = [("Via", via) for via in request.all("via")]
    headers += [("From", request.get("from")), ("To", to), ("Call-ID", request.get("call-id"))]
    headers += [("CSeq", request.get("cseq")), *extra]
    return _serialize(f"SIP/2.0 {status}", headers, body)


# --- the two ends ---------------------------------------------------------------------


class _Rtp(asyncio.DatagramProtocol):
    """One RTP socket shared by all legs of one side; the loop only counts arrivals."""

    def __init__(self, host: str) -> None:
        self.received = 0
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            self.socket.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        self.socket.setblocking(False)
        self.socket.bind((host, 0))
        self.address: tuple[str, int] = self.socket.getsockname()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received += 1

    async def start(self) -> None:
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=self.socket)


@dataclass
class _Call:
    index: int
    call_id: str
    started: float
    answered: asyncio.Future[_Message]
    ended: asyncio.Future[None]
    remote_media: tuple[str, int] | None = None
    setup_ms: float = 0.0
    to: str = ""
    target: str = ""


@dataclass
class _Carrier(asyncio.DatagramProtocol):
    """The trunk side: places calls to the company number and hangs them up."""

    server: tuple[str, int]
    rtp: _Rtp
    calls: dict[str, _Call] = field(default_factory=dict)
    transport: asyncio.DatagramTransport | None = None
    hung_up_by_server: int = 0
    _branches: itertools.count[int] = field(default_factory=itertools.count)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        address: tuple[str, int] = self.transport.get_extra_info("sockname")
        return address

    def _send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.server)

    def _request(self, call: _Call, method: str, cseq: int, uri: str, to: str) -> bytes:
        host, port = self.address
        headers = [
            ("Via", f"SIP/2.0/UDP {host}:{port};branch=z9hG4bK-{next(self._branches)};rport"),
            ("From", f"<sip:carrier@{host}:{port}>;tag=c{call.index}"),
            ("To", to),
            ("Call-ID", call.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<sip:carrier@{host}:{port}>"),
            ("Max-Forwards", "70"),
        ]
        body = ""
        if method == "INVITE":
            body = _sdp(*self.rtp.address)
            headers.append(("Content-Type", "application/sdp"))
        return _serialize(f"{method} {uri} SIP/2.0", headers, body)

    async def call(self, index: int, timeout: float) -> _Call:  # noqa: ASYNC109
        """Place call `index` and return it once answered and ACKed (raises on failure)."""
        loop = asyncio.get_running_loop()
        call = _Call(
            index,
            f"bench-{index}-{time.monotonic_ns()}@{CARRIER_HOST}",
            loop.time(),
            loop.create_future(),
            loop.create_future(),
        )
        self.calls[call.call_id] = call
        uri = f"sip:{COMPANY_NUMBER}@{self.server[0]}:{self.server[1]}"
        invite = self._request(call, "INVITE", 1, uri, f"<{uri}>")
        answer = await _retransmit(lambda: self._send(invite), call.answered, timeout)
        call.setup_ms = 1000 * (loop.time() - call.started)
        call.to = answer.get("to")
        contact = answer.get("contact")
        call.target = contact[contact.find("<") + 1 : contact.find(">")] if "<" in contact else uri
        call.remote_media = _media_address(answer.body)
        self._send(self._request(call, "ACK", 1, call.target, call.to))
        return call

    async def hang_up(self, call: _Call, timeout: float) -> None:  # noqa: ASYNC109
        if call.ended.done():
            return
        bye = self._request(call, "BYE", 2, call.target, call.to)
        await _retransmit(lambda: self._send(bye), call.ended, timeout)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        message = _parse(data)
        call = self.calls.get(message.get("call-id"))
        if message.is_request:
            if message.method != "ACK":
                assert self.transport is not None
                self.transport.sendto(_reply(message, "200 OK", "c", []), addr)
            if message.method == "BYE" and call is not None and not call.ended.done():
                self.hung_up_by_server += 1
                call.ended.set_result(None)
            return
        if call is None:
            return
        status, method = message.status, message.method
        if method == "INVITE" and status >= 200:
            if call.answered.done():
                # A retransmitted 200: its ACK was lost.
                if status < 300:
                    self._send(self._request(call, "ACK", 1, call.target, call.to))
                return
            if status < 300:
                call.answered.set_result(message)
            else:
                call.answered.set_exception(RuntimeError(message.first_line))
        elif method == "BYE" and status >= 200 and not call.ended.done():
            call.ended.set_result(None)


async def _retransmit(send: Callable[[], None], done: asyncio.Future[Any], timeout: float) -> Any:  # noqa: ASYNC109
    """Send until `done` resolves, doubling the interval from 0.5 s (RFC 3261 timer A)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    interval = 0.5
    while True:
        send()
        wait = min(interval, deadline - loop.time())
        if wait <= 0:
            raise TimeoutError("no final response")
        try:
            return await asyncio.wait_for(asyncio.shield(done), wait)
        except TimeoutError:
            interval = min(2 * interval, 4.0)


@dataclass
class _Phone(asyncio.DatagramProtocol):
    """User 1001's registered device: answers every INVITE at once, accepts every BYE."""

    rtp: _Rtp
    port: int
    legs: dict[str, tuple[str, int]] = field(default_factory=dict)
    answers: dict[str, bytes] = field(default_factory=dict)
    transport: asyncio.DatagramTransport | None = None
    _tags: itertools.count[int] = field(default_factory=itertools.count)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        message = _parse(data)
        if not message.is_request:
            return
        call_id, method = message.get("call-id"), message.method
        if method == "INVITE":
            answer = self.answers.get(call_id)
            if answer is None:
                media = _media_address(message.body)
                if media is not None:
                    self.legs[call_id] = media
                contact = f"<sip:{CALLEE}@{PHONE_HOST}:{self.port}>"
                extra = [("Contact", contact), ("Content-Type", "application/sdp")]
                tag = f"p{next(self._tags)}"
                answer = _reply(message, "200 OK", tag, extra, _sdp(*self.rtp.address))
                self.answers[call_id] = answer
            self.transport.sendto(answer, addr)
        elif method != "ACK":
            if method == "BYE":
                self.legs.pop(call_id, None)
                self.answers.pop(call_id, None)
            self.transport.sendto(_reply(message, "200 OK", "p", []), addr)


# --- the benchmark --------------------------------------------------------------------


@dataclass(frozen=True)
class MediaRun:
    """One measuring window with `calls` calls up (or, for the baseline, streams)."""

    calls: int
    sent: int
    received: int
    send_errors: int
    server_cpu_seconds: float
    calls_lost: int

    @property
    def loss_percent(self) -> float:
        return 100.0 * (self.sent - self.received) / max(self.sent, 1)

    @property
    def server_cpu_us_per_packet(self) -> float:
        return 1e6 * self.server_cpu_seconds / max(self.received, 1)


@dataclass
class MediaPoint:
    calls: int
    established: int
    setup_ms_p50: float
    rss_idle_kib: int
    rss_kib: int
    runs: list[MediaRun] = field(default_factory=list)

    @property
    def memory_per_call_kib(self) -> float:
        return (self.rss_kib - self.rss_idle_kib) / max(self.established, 1)

    @property
    def loss_percent(self) -> float:
        return median([run.loss_percent for run in self.runs])


@dataclass
class MediaResult:
    points: list[MediaPoint]
    baseline: list[MediaRun]
    seconds: float
    command: str


async def _establish(carrier: _Carrier, count: int, first: int) -> tuple[list[_Call], list[float]]:
    """Place `count` calls at SETUP_RATE; the answered ones and their setup times (ms)."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[_Call]] = []
    start = loop.time()
    for i in range(count):
        tasks.append(asyncio.create_task(carrier.call(first + i, timeout=20.0)))
        await asyncio.sleep(max(0.0, start + (i + 1) / SETUP_RATE - loop.time()))
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    calls = [outcome for outcome in outcomes if isinstance(outcome, _Call)]
    return calls, [call.setup_ms for call in calls]


async def _tear_down(carrier: _Carrier, calls: list[_Call], server: BenchServer) -> None:
    await asyncio.gather(
        *(carrier.hang_up(call, timeout=10.0) for call in calls), return_exceptions=True
    )
    for call in calls:
        carrier.calls.pop(call.call_id, None)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while loop.time() < deadline:
        if (await asyncio.to_thread(server.counters)).get("active_calls", 0) == 0:
            return
        await asyncio.sleep(0.2)


async def _blast(
    senders: list[tuple[socket.socket, tuple[str, int]]], seconds: float
) -> tuple[int, int]:
    """Send PACKET from every (socket, destination) 50 times a second; (sent, errors)."""
    loop = asyncio.get_running_loop()
    slices = [senders[i::SLICES] for i in range(SLICES)]
    interval = 1 / (PACKETS_PER_SECOND * SLICES)
    sent = errors = 0
    deadline = loop.time()
    for tick in range(int(seconds * PACKETS_PER_SECOND * SLICES)):
        for sock, destination in slices[tick % SLICES]:
            try:
                sock.sendto(PACKET, destination)
            except BlockingIOError:
                errors += 1  # still counted as sent: a phone would have lost it too
        sent += len(slices[tick % SLICES])
        deadline += interval
        await asyncio.sleep(max(0.0, deadline - loop.time()))
    return sent, errors


async def _window(
    senders: list[tuple[socket.socket, tuple[str, int]]],
    receivers: tuple[_Rtp, _Rtp],
    seconds: float,
    server: BenchServer,
    carrier: _Carrier | None,
) -> MediaRun:
    # One packet per leg first, so that Nuage latches every leg before counting starts.
    for sock, destination in senders:
        sock.sendto(PACKET, destination)
    await asyncio.sleep(DRAIN_SECONDS)
    for rtp in receivers:
        rtp.received = 0
    lost_before = carrier.hung_up_by_server if carrier is not None else 0
    cpu_before = server.cpu_seconds()
    sent, errors = await _blast(senders, seconds)
    await asyncio.sleep(DRAIN_SECONDS)
    cpu = server.cpu_seconds() - cpu_before
    lost = (carrier.hung_up_by_server if carrier is not None else 0) - lost_before
    received = sum(rtp.received for rtp in receivers)
    return MediaRun(len(senders) // 2, sent, received, errors, cpu, lost)


async def measure_media(
    workdir: Path, points: list[int], runs: int, seconds: float, command: str
) -> MediaResult:
    """Hold each count of calls in `points`, `runs` windows of `seconds` s each."""
    async with bench_server(workdir / "server") as server:
        phone_port = free_port()
        registration = await run_sipp(
            SCENARIOS / "register.xml",
            server.sip_target,
            workdir=workdir,
            local_port=phone_port,
            inject=[account_row(CALLEE, sip_password(CALLEE), DOMAIN)],
        )
        registration.assert_ok(1)
        loop = asyncio.get_running_loop()
        carrier_rtp, phone_rtp = _Rtp(CARRIER_HOST), _Rtp(PHONE_HOST)
        await carrier_rtp.start()
        await phone_rtp.start()
        phone = _Phone(phone_rtp, phone_port)
        await loop.create_datagram_endpoint(lambda: phone, local_addr=(PHONE_HOST, phone_port))
        carrier = _Carrier(("127.0.0.1", server.sip_port), carrier_rtp)
        await loop.create_datagram_endpoint(lambda: carrier, local_addr=(CARRIER_HOST, 0))
        # A first batch of calls loads and warms every code path before the idle RSS.
        warm, _ = await _establish(carrier, 50, 0)
        await _tear_down(carrier, warm, server)
        next_index = 50
        rss_idle = server.rss_kib()
        results: list[MediaPoint] = []
        for count in points:
            calls, setup = await _establish(carrier, count, next_index)
            next_index += count
            await asyncio.sleep(1.0)
            point = MediaPoint(
                count, len(calls), percentile(setup, 0.5), rss_idle, server.rss_kib()
            )
            results.append(point)
            senders = [(carrier_rtp.socket, c.remote_media) for c in calls if c.remote_media]
            senders += [(phone_rtp.socket, leg) for leg in phone.legs.values()]
            for _ in range(runs):
                run = await _window(senders, (carrier_rtp, phone_rtp), seconds, server, carrier)
                point.runs.append(run)
            await _tear_down(carrier, calls, server)
        largest = max(points)
        direct = [(carrier_rtp.socket, phone_rtp.address)] * largest
        direct += [(phone_rtp.socket, carrier_rtp.address)] * largest
        baseline = [
            await _window(direct, (carrier_rtp, phone_rtp), seconds, server, None)
            for _ in range(runs)
        ]
    return MediaResult(results, baseline, seconds, command)
