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

bench/in_call.py reuses these two ends (``Peers``): the phone can also send in-dialog
requests (a hold re-INVITE, INFO digits, BYE), and a receiving socket can follow each
source's stream (arrival times, RTP sequence numbers) for loss and jitter per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import time
from array import array
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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
from bench.stats import machine_busy_seconds, median, percentile

T = TypeVar("T")
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
PHONE_HOST = "127.0.0.1"
_HEADER = struct.Struct("!BBHII")
_PAYLOAD = bytes(160)  # 20 ms of G.711 u-law
PACKET = _HEADER.pack(0x80, 0, 1, 160, 0x1234) + _PAYLOAD
PACKETS_PER_SECOND = 50
PERIOD = 1 / PACKETS_PER_SECOND
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
class Message:
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


def _parse(data: bytes) -> Message:
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
    return Message(lines[0], headers, body)


def _media_address(sdp: str) -> tuple[str, int] | None:
    host, port = "", 0
    for line in sdp.splitlines():
        if line.startswith("c=IN IP4 "):
            host = line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return (host, port) if host and port else None


def _sdp(host: str, port: int, direction: str = "sendrecv", version: int = 1) -> str:
    return (
        f"v=0\r\no=bench 1 {version} IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n"
    )


def _serialize(first_line: str, headers: list[tuple[str, str]], body: str = "") -> bytes:
    lines = [first_line, *(f"{name}: {value}" for name, value in headers)]
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _reply(
    request: Message, status: str, to_tag: str, extra: list[tuple[str, str]], body: str = ""
) -> bytes:
    to = request.get("to")
    if ";tag=" not in to:
        to += f";tag={to_tag}"
    headers = [("Via", via) for via in request.all("via")]
    headers += [("From", request.get("from")), ("To", to), ("Call-ID", request.get("call-id"))]
    headers += [("CSeq", request.get("cseq")), *extra]
    return _serialize(f"SIP/2.0 {status}", headers, body)


# --- the two ends ---------------------------------------------------------------------


@dataclass(slots=True)
class _Stream:
    """One source's packets as a receiving socket saw them."""

    last_at: float
    seq: int  # the highest RTP sequence number so far
    packets: int = 1
    numbered: int = 1  # sequence numbers from the first to the highest, both included


@dataclass(frozen=True)
class Arrivals:
    """What one socket received from its sources (one stream per call) over a window.

    ``expected`` is 50 packets/s per source over the window, whether the source sent or
    not: packets are counted by arrival time inside the window, so delays at its two
    ends even out, and the only error left is the phase of the sources' 20 ms clock
    against the window's ends (at most one packet per source, 0.1 % of 20 s).
    ``numbered`` is how many sequence numbers the sources used meanwhile, i.e. what
    they sent: ``numbered - packets`` were lost on the way, ``expected - numbered``
    never sent (same error). The deviation is |inter-arrival time - 20 ms| between
    consecutive packets of a stream (a gap in the numbering is not measured; packets
    that all carry one number, media.py's PACKET, are all measured).
    """

    seconds: float
    sources: int
    packets: int
    expected: int
    numbered: int
    deviation_ms: tuple[float, float, float]  # p50, p99, max

    @property
    def loss_percent(self) -> float:
        return 100.0 * (self.expected - self.packets) / max(self.expected, 1)

    @property
    def unsent_percent(self) -> float:
        return 100.0 * (self.expected - self.numbered) / max(self.expected, 1)


class _Rtp(asyncio.DatagramProtocol):
    """One RTP socket shared by all legs of one side; the loop only counts arrivals,
    and, once ``follow`` is called, follows each source's stream."""

    def __init__(self, host: str) -> None:
        self.received = 0
        self.streams: dict[Any, _Stream] | None = None
        self.deviations = array("d")
        self.transport: asyncio.BaseTransport | None = None
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            self.socket.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        self.socket.setblocking(False)
        self.socket.bind((host, 0))
        self.address: tuple[str, int] = self.socket.getsockname()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received += 1
        streams = self.streams
        if streams is not None:
            self._follow(streams, data, addr)

    def _follow(self, streams: dict[Any, _Stream], data: bytes, addr: Any) -> None:
        now = time.monotonic()
        seq = int.from_bytes(data[2:4], "big")
        stream = streams.get(addr)
        if stream is None:
            streams[addr] = _Stream(now, seq)
            return
        step = (seq - stream.seq) & 0xFFFF
        if step <= 1:  # the next packet (or one of the generator's, all numbered alike)
            self.deviations.append(abs(now - stream.last_at - PERIOD) * 1000)
        if 0 < step < 0x8000:  # ahead: a duplicate or a late one does not move it
            stream.numbered += step
            stream.seq = seq
        stream.packets += 1
        stream.last_at = now

    def reset(self, *, follow: bool = False) -> None:
        """Count from zero; with ``follow``, also follow each source from now on."""
        self.received = 0
        self.streams = {} if follow else None
        self.deviations = array("d")

    def arrivals(self, sources: list[tuple[str, int]], since: float) -> Arrivals:
        """What came from ``sources`` since ``since`` (time.monotonic()), up to now; stops
        following."""
        until = time.monotonic()
        streams = self.streams or {}
        self.streams = None
        packets = numbered = 0
        for source in sources:
            stream = streams.get(source)
            if stream is not None:
                packets += stream.packets
                numbered += stream.numbered
        deviations = list(self.deviations)
        return Arrivals(
            until - since,
            sum(1 for source in sources if source in streams),
            packets,
            round(len(sources) * (until - since) / PERIOD),
            numbered,
            (
                percentile(deviations, 0.5),
                percentile(deviations, 0.99),
                max(deviations, default=float("nan")),
            ),
        )

    async def start(self) -> None:
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=self.socket)


@dataclass
class Call:
    index: int
    call_id: str
    started: float
    answered: asyncio.Future[Message]
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
    calls: dict[str, Call] = field(default_factory=dict)
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

    def _request(self, call: Call, method: str, cseq: int, uri: str, to: str) -> bytes:
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

    async def call(self, index: int, timeout: float) -> Call:  # noqa: ASYNC109
        """Place call `index` and return it once answered and ACKed (raises on failure)."""
        loop = asyncio.get_running_loop()
        call = Call(
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

    async def hang_up(self, call: Call, timeout: float) -> None:  # noqa: ASYNC109
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
class _Dialog:
    """The phone's side of one call (RFC 3261 12): what its own requests carry."""

    call_id: str
    local: str  # our From: the To of Nuage's INVITE, with our tag
    remote: str  # our To: the From of Nuage's INVITE
    target: str  # Nuage's Contact, the Request-URI
    peer: tuple[str, int]
    cseq: int = 0


@dataclass
class _Phone(asyncio.DatagramProtocol):
    """User 1001's registered device: answers every INVITE at once, accepts every BYE,
    and sends in-dialog requests of its own (``request``)."""

    rtp: _Rtp
    port: int
    legs: dict[str, tuple[str, int]] = field(default_factory=dict)
    answers: dict[str, bytes] = field(default_factory=dict)
    dialogs: dict[str, _Dialog] = field(default_factory=dict)
    transport: asyncio.DatagramTransport | None = None
    _tags: itertools.count[int] = field(default_factory=itertools.count)
    _branches: itertools.count[int] = field(default_factory=itertools.count)
    _pending: dict[tuple[str, str], asyncio.Future[Message]] = field(default_factory=dict)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        message = _parse(data)
        call_id, method = message.get("call-id"), message.method
        if not message.is_request:
            self._response(message)
            return
        if method == "INVITE":
            answer = self.answers.get(call_id)
            if answer is None and call_id in self.dialogs:
                # Nuage's own re-INVITE (none in these benchmarks): accepted as it is.
                answer = _reply(message, "200 OK", "p", [], _sdp(*self.rtp.address))
            elif answer is None:
                media = _media_address(message.body)
                if media is not None:
                    self.legs[call_id] = media
                contact = f"<sip:{CALLEE}@{PHONE_HOST}:{self.port}>"
                extra = [("Contact", contact), ("Content-Type", "application/sdp")]
                tag = f"p{next(self._tags)}"
                answer = _reply(message, "200 OK", tag, extra, _sdp(*self.rtp.address))
                self.answers[call_id] = answer
                server = message.get("contact")
                self.dialogs[call_id] = _Dialog(
                    call_id,
                    f"{message.get('to')};tag={tag}",
                    message.get("from"),
                    server[server.find("<") + 1 : server.find(">")],
                    (str(addr[0]), int(addr[1])),
                )
            self.transport.sendto(answer, addr)
        elif method != "ACK":
            if method == "BYE":
                self.legs.pop(call_id, None)
                self.answers.pop(call_id, None)
                self.dialogs.pop(call_id, None)
            self.transport.sendto(_reply(message, "200 OK", "p", []), addr)

    def _response(self, message: Message) -> None:
        if message.status < 200:
            return
        key = (message.get("call-id"), message.get("cseq"))
        future = self._pending.get(key)
        dialog = self.dialogs.get(key[0])
        if message.method == "INVITE" and message.status < 300 and dialog is not None:
            # Every 2xx of a re-INVITE is acknowledged, retransmissions included.
            seq = int(key[1].split()[0])
            self._send(dialog, self._in_dialog(dialog, "ACK", seq))
        if future is not None and not future.done():
            future.set_result(message)

    def _send(self, dialog: _Dialog, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, dialog.peer)

    def _in_dialog(
        self, dialog: _Dialog, method: str, seq: int, body: str = "", content_type: str = ""
    ) -> bytes:
        headers = [
            ("Via", f"SIP/2.0/UDP {PHONE_HOST}:{self.port};branch=z9hG4bK-p{next(self._branches)}"),
            ("From", dialog.local),
            ("To", dialog.remote),
            ("Call-ID", dialog.call_id),
            ("CSeq", f"{seq} {method}"),
            ("Max-Forwards", "70"),
        ]
        if method == "INVITE":
            headers.append(("Contact", f"<sip:{CALLEE}@{PHONE_HOST}:{self.port}>"))
        if content_type:
            headers.append(("Content-Type", content_type))
        return _serialize(f"{method} {dialog.target} SIP/2.0", headers, body)

    async def request(
        self,
        call_id: str,
        method: str,
        body: str = "",
        content_type: str = "",
        timeout: float = 20.0,  # noqa: ASYNC109
    ) -> Message:
        """Send ``method`` in the dialog of ``call_id`` until a final response, and return
        it (a 2xx to an INVITE is acknowledged)."""
        dialog = self.dialogs[call_id]
        dialog.cseq += 1
        key = (call_id, f"{dialog.cseq} {method}")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        data = self._in_dialog(dialog, method, dialog.cseq, body, content_type)
        try:
            response: Message = await _retransmit(lambda: self._send(dialog, data), future, timeout)
        finally:
            self._pending.pop(key, None)
        if method == "BYE":
            self.legs.pop(call_id, None)
            self.answers.pop(call_id, None)
            self.dialogs.pop(call_id, None)
        return response

    def hold_offer(self) -> str:
        """The SDP of a re-INVITE that puts the call on hold (RFC 6337 5.1: sendonly)."""
        return _sdp(*self.rtp.address, direction="sendonly", version=2)


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
    # |inter-arrival time - 20 ms| per leg: p50, p99, max (NaN unless followed).
    deviation_ms: tuple[float, float, float] = (float("nan"),) * 3
    elapsed: float = float("nan")  # the seconds server_cpu_seconds was measured over
    generator_cpu_seconds: float = float("nan")  # this process's (both ends)
    machine_busy_seconds: float = float("nan")  # every process (the machine is shared)

    @property
    def loss_percent(self) -> float:
        return 100.0 * (self.sent - self.received) / max(self.sent, 1)

    @property
    def server_cpu_us_per_packet(self) -> float:
        return 1e6 * self.server_cpu_seconds / max(self.received, 1)

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.server_cpu_seconds / self.elapsed

    @property
    def generator_cpu_percent(self) -> float:
        return 100.0 * self.generator_cpu_seconds / self.elapsed

    @property
    def machine_busy_percent(self) -> float:
        return 100.0 * self.machine_busy_seconds / self.elapsed


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


async def paced(starts: Iterable[Coroutine[Any, Any, T]], rate: float) -> list[T | BaseException]:
    """Start each coroutine in turn, `rate` a second, then wait for them all: what each
    returned or raised, in order."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[T]] = []
    start = loop.time()
    for i, coroutine in enumerate(starts):
        tasks.append(asyncio.create_task(coroutine))
        await asyncio.sleep(max(0.0, start + (i + 1) / rate - loop.time()))
    return await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Peers:
    """A fresh server with its two ends: the carrier and user 1001's phone (registered),
    after 50 warm-up calls (all ended)."""

    server: BenchServer
    carrier: _Carrier
    phone: _Phone
    carrier_rtp: _Rtp
    phone_rtp: _Rtp
    rss_idle_kib: int = 0
    _next_index: int = 0

    async def establish(self, count: int) -> tuple[list[Call], list[float]]:
        """Place `count` calls at SETUP_RATE; the answered ones and their setup times (ms)."""
        first = self._next_index
        self._next_index += count
        placing = (self.carrier.call(first + i, timeout=20.0) for i in range(count))
        outcomes = await paced(placing, SETUP_RATE)
        calls = [outcome for outcome in outcomes if isinstance(outcome, Call)]
        return calls, [call.setup_ms for call in calls]

    async def tear_down(self, calls: list[Call]) -> None:
        """The carrier hangs up `calls` (those still up); waits until Nuage has no call."""
        await asyncio.gather(
            *(self.carrier.hang_up(call, timeout=10.0) for call in calls), return_exceptions=True
        )
        for call in calls:
            self.carrier.calls.pop(call.call_id, None)
        await self.wait_for("active_calls", 0, 15.0)

    async def wait_for(self, counter: str, value: int, within: float) -> int:
        """Poll /healthz until `counter` equals `value` or `within` s passed; its last value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            current = (await asyncio.to_thread(self.server.counters)).get(counter, 0)
            if current == value or loop.time() > deadline:
                return current
            await asyncio.sleep(0.2)

    def senders(self, calls: list[Call]) -> Senders:
        """Every leg's (socket, destination): the carrier's legs of `calls`, then every leg
        the phone has."""
        senders = [(self.carrier_rtp.socket, c.remote_media) for c in calls if c.remote_media]
        senders += [(self.phone_rtp.socket, leg) for leg in self.phone.legs.values()]
        return senders


@contextlib.asynccontextmanager
async def peers(workdir: Path) -> AsyncIterator[Peers]:
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
        ends = Peers(server, carrier, phone, carrier_rtp, phone_rtp)
        try:
            # A first batch of calls loads and warms every code path before the idle RSS.
            warm, _ = await ends.establish(50)
            await ends.tear_down(warm)
            ends.rss_idle_kib = server.rss_kib()
            yield ends
        finally:
            for end in (carrier, phone, carrier_rtp, phone_rtp):
                if end.transport is not None:
                    end.transport.close()


class Numbering:
    """RTP numbering per leg (sequence number, timestamp, SSRC) for receivers that read it,
    such as a recording's jitter buffer. Without it every leg sends PACKET, one constant
    packet: cheaper, and all a relay looks at."""

    def __init__(self, legs: int) -> None:
        self._next = [1] * legs

    def packet(self, leg: int) -> bytes:
        seq = self._next[leg]
        self._next[leg] = seq + 1
        return _HEADER.pack(0x80, 0, seq & 0xFFFF, 160 * seq & 0xFFFFFFFF, leg + 1) + _PAYLOAD


Senders = list[tuple[socket.socket, tuple[str, int]]]


async def blast(
    senders: Senders, seconds: float, numbering: Numbering | None = None
) -> tuple[int, int]:
    """Send from every (socket, destination) 50 times a second; (sent, errors)."""
    loop = asyncio.get_running_loop()
    legs = [(i, sock, destination) for i, (sock, destination) in enumerate(senders)]
    slices = [legs[i::SLICES] for i in range(SLICES)]
    interval = 1 / (PACKETS_PER_SECOND * SLICES)
    sent = errors = 0
    deadline = loop.time()
    for tick in range(int(seconds * PACKETS_PER_SECOND * SLICES)):
        for leg, sock, destination in slices[tick % SLICES]:
            try:
                sock.sendto(PACKET if numbering is None else numbering.packet(leg), destination)
            except BlockingIOError:
                errors += 1  # still counted as sent: a phone would have lost it too
        sent += len(slices[tick % SLICES])
        deadline += interval
        await asyncio.sleep(max(0.0, deadline - loop.time()))
    return sent, errors


async def latch(senders: Senders, numbering: Numbering | None = None) -> None:
    """One packet per leg first, so that Nuage latches every leg before counting starts."""
    for leg, (sock, destination) in enumerate(senders):
        sock.sendto(PACKET if numbering is None else numbering.packet(leg), destination)
    await asyncio.sleep(DRAIN_SECONDS)


async def window(
    senders: Senders,
    receivers: tuple[_Rtp, _Rtp],
    seconds: float,
    server: BenchServer,
    carrier: _Carrier | None,
    *,
    follow: bool = False,
    numbering: Numbering | None = None,
) -> MediaRun:
    """Send for `seconds` on every leg and count what arrives (with `follow`, also the
    inter-arrival deviation, over both receivers)."""
    await latch(senders, numbering)
    for rtp in receivers:
        rtp.reset(follow=follow)
    lost_before = carrier.hung_up_by_server if carrier is not None else 0
    cpu_before, own_before, since = server.cpu_seconds(), time.process_time(), time.monotonic()
    busy_before = machine_busy_seconds()
    sent, errors = await blast(senders, seconds, numbering)
    await asyncio.sleep(DRAIN_SECONDS)
    cpu, elapsed = server.cpu_seconds() - cpu_before, time.monotonic() - since
    own, busy = time.process_time() - own_before, machine_busy_seconds() - busy_before
    lost = (carrier.hung_up_by_server if carrier is not None else 0) - lost_before
    received = sum(rtp.received for rtp in receivers)
    deviation = (float("nan"),) * 3
    if follow:
        deviations = [d for rtp in receivers for d in rtp.deviations]
        for rtp in receivers:
            rtp.reset()
        deviation = (
            percentile(deviations, 0.5),
            percentile(deviations, 0.99),
            max(deviations, default=float("nan")),
        )
    return MediaRun(
        len(senders) // 2, sent, received, errors, cpu, lost, deviation, elapsed, own, busy
    )


async def measure_media(
    workdir: Path, points: list[int], runs: int, seconds: float, command: str
) -> MediaResult:
    """Hold each count of calls in `points`, `runs` windows of `seconds` s each."""
    async with peers(workdir) as ends:
        server = ends.server
        receivers = (ends.carrier_rtp, ends.phone_rtp)
        results: list[MediaPoint] = []
        for count in points:
            calls, setup = await ends.establish(count)
            await asyncio.sleep(1.0)
            point = MediaPoint(
                count, len(calls), percentile(setup, 0.5), ends.rss_idle_kib, server.rss_kib()
            )
            results.append(point)
            senders = ends.senders(calls)
            for _ in range(runs):
                point.runs.append(await window(senders, receivers, seconds, server, ends.carrier))
            await ends.tear_down(calls)
        largest = max(points)
        direct = [(ends.carrier_rtp.socket, ends.phone_rtp.address)] * largest
        direct += [(ends.phone_rtp.socket, ends.carrier_rtp.address)] * largest
        baseline = [await window(direct, receivers, seconds, server, None) for _ in range(runs)]
    return MediaResult(results, baseline, seconds, command)
