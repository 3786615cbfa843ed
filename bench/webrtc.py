"""Concurrent calls between a browser (WebRTC: ICE, DTLS-SRTP, rtcp-mux) and the
carrier (plain RTP), through the server: the media of issue 6's softphone.

bench/media.py's carrier places N calls to the company number; the number rings user
1001, who is registered over the SIP WebSocket (/sip) the way the web app is, and this
process plays that browser for every call: it answers the server's WebRTC offer with
its own (setup:active, one host candidate), sends an ICE check naming the server's
credentials (USE-CANDIDATE), runs the DTLS handshake as the client (the server's own
media/webrtc code, used here from the other side), then sends and receives SRTP. A real
browser's media stack (aiortc) would cost this process more CPU per call than the
server spends; this one only protects and unprotects packets (libsrtp).

Both ends send 172-byte PCMU packets every 20 ms per call; the window counts what each
end receives (after SRTP on the browser's end). The same run measures plain calls
(bench/media.py's phone registered over UDP, no encryption) for the ratio of server CPU
per packet: WebRTC legs against RTP legs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.media import (
    DRAIN_SECONDS,
    SETUP_RATE,
    SOCKET_BUFFER,
    Call,
    MediaRun,
    Numbering,
    Peers,
    _Carrier,
    _Rtp,
    blast,
    latch,
    paced,
    peers,
    window,
)
from bench.server import CALLEE, CARRIER_HOST, BenchServer, bench_server, sip_password
from bench.sip_ua import Offered, UserAgent, browser_answer, sdp_attribute, websocket_agent
from bench.stats import machine_busy_seconds, median, percentile
from nuage.media.webrtc import ice_lite
from nuage.media.webrtc.dtls import Certificate, DtlsSrtp, is_dtls
from nuage.sip.message import Request

BROWSER_HOST = "127.0.0.1"
_USERNAME, _PRIORITY, _USE_CANDIDATE, _ICE_CONTROLLING = 0x0006, 0x0024, 0x0025, 0x802A


@dataclass
class _Leg:
    """One call's browser end: its ICE and DTLS state towards the server's port."""

    server: tuple[str, int]
    ufrag: str
    pwd: str
    server_ufrag: str
    server_pwd: str
    dtls: DtlsSrtp
    checked: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0

    def check(self) -> bytes:
        """An ICE check as a controlling full agent nominates with (RFC 8445 7.1)."""
        return ice_lite.build(
            0x0001,
            secrets.token_bytes(12),
            [
                (_USERNAME, f"{self.server_ufrag}:{self.ufrag}".encode()),
                (_PRIORITY, (0x6E7F1EFF).to_bytes(4, "big")),
                (_ICE_CONTROLLING, secrets.token_bytes(8)),
                (_USE_CANDIDATE, b""),
            ],
            self.server_pwd.encode(),
        )


class _Protected:
    """Stands as a socket for blast(): SRTP-protects each packet of one leg."""

    def __init__(self, sock: socket.socket, leg: _Leg) -> None:
        self._socket = sock
        self._leg = leg

    def sendto(self, data: bytes, address: tuple[str, int]) -> None:
        keys = self._leg.dtls.keys
        if keys is not None:
            self._socket.sendto(keys.protect(data), address)


class _BrowserMedia(asyncio.DatagramProtocol):
    """The browser's one UDP socket for every call, told apart by the server's port."""

    def __init__(self) -> None:
        self.legs: dict[tuple[str, int], _Leg] = {}
        self.transport: asyncio.BaseTransport | None = None
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            self.socket.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        self.socket.setblocking(False)
        self.socket.bind((BROWSER_HOST, 0))
        self.address: tuple[str, int] = self.socket.getsockname()

    async def start(self) -> None:
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=self.socket)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    @property
    def received(self) -> int:
        return sum(leg.received for leg in self.legs.values())

    def reset(self) -> None:
        for leg in self.legs.values():
            leg.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        leg = self.legs.get((addr[0], addr[1]))
        if leg is None or not data:
            return
        if 128 <= data[0] <= 191:
            keys = leg.dtls.keys
            if keys is not None:
                with contextlib.suppress(Exception):
                    keys.unprotect(data)
                    leg.received += 1
        elif ice_lite.is_stun(data):
            leg.checked.set()
        elif is_dtls(data):
            for datagram in leg.dtls.receive(data):
                self.socket.sendto(datagram, leg.server)

    async def connect(self, leg: _Leg, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """ICE, then the DTLS handshake, retried until both are done."""
        async with asyncio.timeout(timeout):
            while not leg.checked.is_set():
                self.socket.sendto(leg.check(), leg.server)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(leg.checked.wait(), 0.2)
            for datagram in leg.dtls.start():
                self.socket.sendto(datagram, leg.server)
            while not leg.dtls.established:
                if leg.dtls.failure is not None:
                    raise RuntimeError(leg.dtls.failure)
                await asyncio.sleep(0.05)
                due = leg.dtls.timeout()
                if due is not None and due <= 0:
                    for datagram in leg.dtls.on_timeout():
                        self.socket.sendto(datagram, leg.server)


class _Browser:
    """User 1001 in the web app: registered over the SIP WebSocket (digest), answering
    every call at once (no 180) with WebRTC media on ``media``."""

    def __init__(self, url: str, media: _BrowserMedia) -> None:
        self._url = url
        self.media = media
        self.certificate = Certificate.generate()
        self.agent: UserAgent | None = None
        self._answering: dict[str, _Leg] = {}
        self.connecting: set[asyncio.Task[None]] = set()
        self.failures = 0

    async def start(self) -> None:
        self.agent = await websocket_agent(
            self._url,
            CALLEE,
            password=sip_password(CALLEE),
            answer=self._answer,
            answered=self._answered,
            ring=False,
        )

    async def close(self) -> None:
        if self.agent is not None:
            await self.agent.close()

    def _answer(self, request: Request, arrival: float) -> str:
        offer = request.body.decode()
        mid = sdp_attribute(offer, "mid")
        candidate = sdp_attribute(offer, "candidate").split()
        algorithm, fingerprint = sdp_attribute(offer, "fingerprint").split(" ", 1)
        ice = ice_lite.new_credentials()
        leg = _Leg(
            (candidate[4], int(candidate[5])),
            *ice,
            sdp_attribute(offer, "ice-ufrag"),
            sdp_attribute(offer, "ice-pwd"),
            DtlsSrtp(self.certificate, client=True, remote_fingerprint=(algorithm, fingerprint)),
        )
        self.media.legs[leg.server] = leg
        self._answering[request.call_id] = leg
        return browser_answer(mid, self.media.address, self.certificate.fingerprint, ice)

    def _answered(self, offered: Offered) -> None:
        leg = self._answering.pop(offered.request.call_id, None)
        if leg is not None:
            task = asyncio.create_task(self._connect(leg))
            self.connecting.add(task)
            task.add_done_callback(self.connecting.discard)

    async def _connect(self, leg: _Leg) -> None:
        try:
            await self.media.connect(leg)
        except (TimeoutError, RuntimeError):
            self.failures += 1


@dataclass
class WebRtcPoint:
    calls: int
    established: int
    secured: int  # calls whose DTLS handshake completed
    setup_ms_p50: float
    runs: list[MediaRun] = field(default_factory=list)

    @property
    def loss_percent(self) -> float:
        return median([run.loss_percent for run in self.runs])


@dataclass
class WebRtcResult:
    points: list[WebRtcPoint]
    plain: list[MediaRun]  # the same count of plain RTP calls: the baseline
    seconds: float
    command: str


@dataclass
class BrowserCalls:
    """Calls from the carrier to user 1001's browser, established: ICE and DTLS done (or
    given up on), each call's two legs ready to send (``senders``)."""

    calls: list[Call]
    legs: list[_Leg]
    senders: list[tuple[Any, tuple[str, int]]]
    numbering: Numbering


@dataclass
class BrowserEnds:
    """The carrier and user 1001's browser, on one server."""

    server: BenchServer
    carrier: _Carrier
    carrier_rtp: _Rtp
    browser: _Browser

    async def establish(self, count: int) -> BrowserCalls:
        """Place ``count`` calls at SETUP_RATE; returns once every answered one's browser
        leg is secured or failed."""
        placing = (self.carrier.call(i, timeout=20.0) for i in range(count))
        outcomes = await paced(placing, SETUP_RATE)
        calls = [outcome for outcome in outcomes if isinstance(outcome, Call)]
        await asyncio.gather(*self.browser.connecting, return_exceptions=True)
        legs = list(self.browser.media.legs.values())
        senders: list[tuple[Any, tuple[str, int]]] = [
            (self.carrier_rtp.socket, call.remote_media) for call in calls if call.remote_media
        ]
        senders += [(_Protected(self.browser.media.socket, leg), leg.server) for leg in legs]
        return BrowserCalls(calls, legs, senders, Numbering(len(senders)))

    async def tear_down(self, established: BrowserCalls) -> None:
        await asyncio.gather(
            *(self.carrier.hang_up(call, timeout=10.0) for call in established.calls),
            return_exceptions=True,
        )
        self.browser.media.legs.clear()

    async def window(self, established: BrowserCalls, seconds: float) -> MediaRun:
        """Like media.window: every packet numbered, since SRTP refuses to protect (or
        accept) a packet index twice."""
        senders, numbering = established.senders, established.numbering
        carrier, server = self.carrier, self.server
        await latch(senders, numbering)
        self.carrier_rtp.reset()
        self.browser.media.reset()
        lost_before = carrier.hung_up_by_server
        cpu_before, own_before, since = server.cpu_seconds(), time.process_time(), time.monotonic()
        busy_before = machine_busy_seconds()
        sent, errors = await blast(senders, seconds, numbering)
        await asyncio.sleep(DRAIN_SECONDS)
        cpu, elapsed = server.cpu_seconds() - cpu_before, time.monotonic() - since
        own, busy = time.process_time() - own_before, machine_busy_seconds() - busy_before
        return MediaRun(
            len(senders) // 2,
            sent,
            self.carrier_rtp.received + self.browser.media.received,
            errors,
            cpu,
            carrier.hung_up_by_server - lost_before,
            elapsed=elapsed,
            generator_cpu_seconds=own,
            machine_busy_seconds=busy,
        )


@contextlib.asynccontextmanager
async def browser_ends(server: BenchServer) -> AsyncIterator[BrowserEnds]:
    loop = asyncio.get_running_loop()
    carrier_rtp, media = _Rtp(CARRIER_HOST), _BrowserMedia()
    await carrier_rtp.start()
    await media.start()
    browser = _Browser(f"ws://127.0.0.1:{server.http_port}/sip", media)
    await browser.start()
    carrier = _Carrier(("127.0.0.1", server.sip_port), carrier_rtp)
    await loop.create_datagram_endpoint(lambda: carrier, local_addr=(CARRIER_HOST, 0))
    try:
        yield BrowserEnds(server, carrier, carrier_rtp, browser)
    finally:
        await browser.close()
        for end in (carrier, carrier_rtp, media):
            if end.transport is not None:
                end.transport.close()


async def measure_webrtc(
    workdir: Path, points: list[int], runs: int, seconds: float, command: str
) -> WebRtcResult:
    results: list[WebRtcPoint] = []
    async with (
        bench_server(workdir / "webrtc" / "server") as server,
        browser_ends(server) as ends,
    ):
        for count in points:
            established = await ends.establish(count)
            point = WebRtcPoint(
                count,
                len(established.calls),
                sum(1 for leg in established.legs if leg.dtls.established),
                percentile([call.setup_ms for call in established.calls], 0.5),
            )
            results.append(point)
            for _ in range(runs):
                point.runs.append(await ends.window(established, seconds))
            await ends.tear_down(established)
    plain = await _plain(workdir / "plain", max(points), runs, seconds)
    return WebRtcResult(results, plain, seconds, command)


async def _plain(workdir: Path, count: int, runs: int, seconds: float) -> list[MediaRun]:
    """The same calls with the phone registered over UDP (no ICE, no DTLS, no SRTP)."""
    ends: Peers
    async with peers(workdir) as ends:
        calls, _ = await ends.establish(count)
        await asyncio.sleep(1.0)
        senders = ends.senders(calls)
        receivers = (ends.carrier_rtp, ends.phone_rtp)
        return [
            await window(senders, receivers, seconds, ends.server, ends.carrier)
            for _ in range(runs)
        ]
