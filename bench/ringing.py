"""Time from placing a call to ringing at the callee (issue 6: "time from tapping call to
ringing at the callee on loopback: target p99 < 300 ms").

Every call is timed from the caller's first INVITE to (1) the callee's device receiving
the server's INVITE (it rings) and (2) the caller receiving 180 Ringing. Three kinds of
call, interleaved call by call so that the machine's noise falls on all alike:

- browser → desk phone: user 1002 in the web app (bench/sip_ua.py over the SIP
  WebSocket, the app's access token as Bearer credential on every request, a Chrome-like
  WebRTC offer) calls 1003, a desk phone registered over UDP (plain RTP offer made for it);
- browser → browser: 1002 calls 1004, another browser over its own WebSocket (a WebRTC
  offer made for it: the server's ICE-lite credentials, fingerprint, setup:actpass);
- the baseline, desk phone → desk phone: 1005 over UDP (digest: INVITE, 401, ACK,
  INVITE with credentials, as desk phones do each call) calls 1003.

Callees send 180 at once and then 200; the caller ACKs and hangs up (BYE) at once. The
callee tells which call reached it by the o= session id of the offer (the server keeps
it), and checks the offer is of its kind (WebRTC for a browser, RTP/AVP without ICE or
DTLS attributes for a desk phone).

Two loads per run, on a fresh server: idle (one call at a time, a short gap after each)
and loaded (calls at a steady rate, open loop, while 50 calls from the carrier to user
1001's browser are up with SRTP both ways: bench/webrtc.py's ends, its window running
meanwhile). All user agents and the background media live in this process; arrival times
are time.monotonic() when the bytes reach the agent's protocol (the WebSocket's: when the
`websockets` reader hands the message over). The server runs under bench/gc_pauses.py,
whose log of its garbage collections is set against the calls that rang late.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.gc_pauses import Pause, read_pauses
from bench.media import DRAIN_SECONDS, MediaRun, paced
from bench.profile import Hotspot, read_profile
from bench.server import DOMAIN, BenchServer, bench_server, extension, sip_password
from bench.sip_ua import (
    UserAgent,
    browser_answer,
    browser_offer,
    phone_answer,
    phone_offer,
    sdp_attribute,
    sdp_session,
    udp_agent,
    websocket_agent,
)
from bench.stats import machine_busy_seconds, median, percentile
from bench.webrtc import BrowserEnds, browser_ends
from nuage.media.webrtc.dtls import Certificate
from nuage.media.webrtc.ice_lite import new_credentials
from nuage.sip.message import Request

TARGET_MS = 300.0
# Per kind of call and load, per run: a run places about 3,000 calls on its server, as many
# as the server's young collections take to add up to a generation-1 collection (on the
# day this was written: one every ~2,800 calls, a pause of seconds).
CALLS = 500
RATE = 10.0  # calls/s under load, all kinds together
BACKGROUND = 50  # established calls under load
GAP = 0.02  # s after each call when idle
PAUSE_MS = 100.0  # a garbage collection this long or longer is reported
WARM_UP = 5  # calls per kind before each run's idle phase, not counted
CALL_TIMEOUT = 30.0
# Extensions: 1001 is the background's browser (bench/webrtc.py), the company number's.
BROWSER_CALLER, PHONE_CALLEE, BROWSER_CALLEE, PHONE_CALLER = (extension(i) for i in (1, 2, 3, 4))
USERS = 5
_WEBRTC_MARKS = (
    "UDP/TLS/RTP/SAVPF",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=fingerprint:",
    "a=setup:actpass",
    "a=rtcp-mux",
    "a=group:BUNDLE",
    "a=candidate:",
)


@dataclass(frozen=True)
class Case:
    name: str
    caller: str  # "browser" or "phone"
    callee: str


CASES = (
    Case("browser → desk phone", "browser", "phone"),
    Case("browser → browser", "browser", "browser"),
    Case("desk phone → desk phone (baseline)", "phone", "phone"),
)
BASELINE = 2
LOADS = ("idle", "loaded")


@dataclass(frozen=True, slots=True)
class Sample:
    case: int
    started: float  # time.monotonic() of the first INVITE
    status: int  # the INVITE's final status (0: none)
    rings_ms: float  # first INVITE → the callee has the INVITE (NaN: never)
    ringback_ms: float  # first INVITE → the caller has 180 (NaN: never)
    challenge_ms: float  # first INVITE → INVITE with credentials (NaN: no challenge)
    retransmissions: int
    offer_ok: bool  # the callee's offer was of its kind


@dataclass
class Phase:
    """One load of one run."""

    load: str
    run: int
    samples: list[Sample]
    seconds: float
    server_cpu_seconds: float
    generator_cpu_seconds: float
    machine_busy_seconds: float
    start: float = 0.0  # time.monotonic()
    background: MediaRun | None = None  # under load: the established calls' media
    secured: int = 0  # background calls whose DTLS completed
    pauses: list[Pause] = field(default_factory=list)  # the server's collections meanwhile

    def of(self, case: int) -> list[Sample]:
        return [s for s in self.samples if s.case == case]

    def paused(self, sample: Sample, at_least_ms: float = PAUSE_MS) -> bool:
        """Whether a collection of ``at_least_ms`` or more ran while ``sample`` was
        waiting to ring."""
        end = sample.started + (sample.rings_ms if not math.isnan(sample.rings_ms) else 0) / 1000
        return any(
            p.ms >= at_least_ms and p.start < end and p.end > sample.started for p in self.pauses
        )

    def percent(self, seconds: float) -> float:
        return 100.0 * seconds / self.seconds

    @property
    def others_cpu_percent(self) -> float:
        return self.percent(
            self.machine_busy_seconds - self.server_cpu_seconds - self.generator_cpu_seconds
        )


@dataclass
class RingingResult:
    phases: list[Phase]
    calls: int  # per run, kind and load
    runs: int
    rate: float
    background: int
    command: str
    problems: list[str] = field(default_factory=list)
    profile: list[Hotspot] | None = None
    profile_cpu_percent: float = 0.0

    def samples(self, load: str, case: int) -> list[Sample]:
        return [s for p in self.phases if p.load == load for s in p.of(case)]

    def phases_of(self, load: str) -> list[Phase]:
        return [p for p in self.phases if p.load == load]

    def medians(self, load: str, case: int, value: Callable[[Sample], float]) -> tuple[float, ...]:
        """The median over runs of each of ``figures``."""
        per_run = [figures(p.of(case), value) for p in self.phases_of(load)]
        return tuple(median([run[i] for run in per_run]) for i in range(4))


def answered(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if 200 <= s.status < 300 and not math.isnan(s.rings_ms)]


def spread(values: Iterable[float]) -> tuple[float, float, float, float]:
    """p50, p95, p99 and max of ``values`` (NaNs left out)."""
    kept = [v for v in values if not math.isnan(v)]
    return (
        percentile(kept, 0.5),
        percentile(kept, 0.95),
        percentile(kept, 0.99),
        max(kept, default=float("nan")),
    )


def figures(samples: list[Sample], value: Callable[[Sample], float]) -> tuple[float, ...]:
    """``spread`` of ``value`` (ms) over the answered ``samples``."""
    return spread(value(s) for s in answered(samples))


def slow_episodes(samples: list[Sample], threshold_ms: float = TARGET_MS) -> list[list[Sample]]:
    """The calls that rang ``threshold_ms`` or later (or never), grouped into episodes:
    calls started within a second of the episode's previous one."""
    slow = sorted(
        (s for s in samples if not s.rings_ms < threshold_ms and not math.isnan(s.started)),
        key=lambda s: s.started,
    )
    episodes: list[list[Sample]] = []
    for sample in slow:
        if episodes and sample.started - episodes[-1][-1].started <= 1.0:
            episodes[-1].append(sample)
        else:
            episodes.append([sample])
    return episodes


def _failed(kind: int) -> Sample:
    """A call that got no final response."""
    nan = float("nan")
    return Sample(kind, nan, 0, nan, nan, nan, 0, offer_ok=False)


class _Devices:
    """The measured devices: two browsers and two desk phones, registered."""

    def __init__(self) -> None:
        self.agents: dict[str, UserAgent] = {}
        self._arrivals: dict[int, asyncio.Future[tuple[float, bool]]] = {}
        self._sessions = itertools.count(1_000_000_001)
        self._certificate = Certificate.generate()
        # Where every SDP of theirs points: bound, never read (no media in these calls).
        self._media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._media.bind(("127.0.0.1", 0))
        self.media: tuple[str, int] = self._media.getsockname()

    async def start(self, server: BenchServer, tokens: dict[str, str]) -> None:
        url = f"ws://127.0.0.1:{server.http_port}/sip"
        sip = ("127.0.0.1", server.sip_port)
        self.agents = {
            "browser": await websocket_agent(
                url, BROWSER_CALLER, bearer=tokens[BROWSER_CALLER], agent="Nuage web"
            ),
            "browser callee": await websocket_agent(
                url,
                BROWSER_CALLEE,
                bearer=tokens[BROWSER_CALLEE],
                answer=self._answer("browser"),
                agent="Nuage web",
            ),
            "phone": await udp_agent(sip, PHONE_CALLER, password=sip_password(PHONE_CALLER)),
            "phone callee": await udp_agent(
                sip, PHONE_CALLEE, password=sip_password(PHONE_CALLEE), answer=self._answer("phone")
            ),
        }

    async def close(self) -> None:
        for agent in self.agents.values():
            await agent.close()
        self._media.close()

    def _answer(self, kind: str) -> Callable[[Request, float], str]:
        def answer(request: Request, arrival: float) -> str:
            offer = request.body.decode(errors="replace")
            webrtc = [mark in offer for mark in _WEBRTC_MARKS]
            ok = all(webrtc) if kind == "browser" else not any(webrtc) and " RTP/AVP " in offer
            session = sdp_session(offer)
            arrived = self._arrivals.pop(session, None) if session is not None else None
            if arrived is not None and not arrived.done():
                arrived.set_result((arrival, ok))
            if kind == "phone":
                return phone_answer(self.media)
            mid = sdp_attribute(offer, "mid")
            return browser_answer(mid, self.media, self._certificate.fingerprint, new_credentials())

        return answer

    async def call(self, kind: int) -> Sample:
        """One call of kind ``CASES[kind]``: placed, rung, answered, hung up."""
        case = CASES[kind]
        caller = self.agents[case.caller]
        callee = PHONE_CALLEE if case.callee == "phone" else BROWSER_CALLEE
        session = next(self._sessions)
        arrived: asyncio.Future[tuple[float, bool]] = asyncio.get_running_loop().create_future()
        self._arrivals[session] = arrived
        if case.caller == "browser":
            fingerprint = self._certificate.fingerprint
            offer = browser_offer(session, self.media, fingerprint, new_credentials())
        else:
            offer = phone_offer(session, self.media)
        nan = float("nan")
        try:
            placed = await caller.invite(callee, offer, timeout=CALL_TIMEOUT)
        except TimeoutError:
            return _failed(kind)
        finally:
            self._arrivals.pop(session, None)
        at, ok = arrived.result() if arrived.done() else (nan, False)
        if placed.answer is not None:
            with contextlib.suppress(TimeoutError):
                await caller.bye(placed)

        def since_invite(moment: float | None) -> float:
            return nan if moment is None else 1000 * (moment - placed.invited)

        return Sample(
            kind,
            placed.invited,
            placed.status,
            since_invite(at),
            since_invite(placed.ringing),
            since_invite(placed.authorized),
            placed.retransmissions,
            ok,
        )


async def _login(server: BenchServer, users: list[str]) -> dict[str, str]:
    """Each user's access token (the web app's login)."""
    base = f"http://127.0.0.1:{server.http_port}"
    tokens: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for user in users:
            body = {"email": f"u{user}@{DOMAIN}", "password": f"app-{user}"}
            response = await client.post("/api/v1/auth/login", json=body)
            response.raise_for_status()
            tokens[user] = response.json()["access_token"]
    return tokens


class _Usage:
    """CPU time of the server, of this process and of the whole machine over a phase."""

    def __init__(self, server: BenchServer) -> None:
        self._server = server
        self._started = (
            time.monotonic(),
            server.cpu_seconds(),
            time.process_time(),
            machine_busy_seconds(),
        )

    def phase(self, load: str, run: int, samples: list[Sample]) -> Phase:
        since, server, own, busy = self._started
        return Phase(
            load,
            run,
            samples,
            time.monotonic() - since,
            self._server.cpu_seconds() - server,
            time.process_time() - own,
            machine_busy_seconds() - busy,
            start=since,
        )


async def _idle(devices: _Devices, server: BenchServer, run: int, calls: int) -> Phase:
    usage = _Usage(server)
    samples = []
    for index in range(calls * len(CASES)):
        samples.append(await devices.call(index % len(CASES)))
        await asyncio.sleep(GAP)
    return usage.phase("idle", run, samples)


async def _loaded(
    devices: _Devices, ends: BrowserEnds, run: int, calls: int, *, rate: float, background: int
) -> Phase:
    established = await ends.establish(background)
    total = calls * len(CASES)
    # The window latches every leg (DRAIN_SECONDS), then sends until after the last call.
    media = asyncio.create_task(ends.window(established, total / rate + 1.0))
    await asyncio.sleep(DRAIN_SECONDS + 0.2)
    usage = _Usage(ends.server)
    outcomes = await paced((devices.call(i % len(CASES)) for i in range(total)), rate)
    samples = [
        outcome if isinstance(outcome, Sample) else _failed(index % len(CASES))
        for index, outcome in enumerate(outcomes)
    ]
    phase = usage.phase("loaded", run, samples)
    phase.background = await media
    phase.secured = sum(1 for leg in established.legs if leg.dtls.established)
    await ends.tear_down(established)
    return phase


async def _run(
    workdir: Path,
    run: int,
    calls: int,
    rate: float,
    background: int,
    *,
    profile: Path | None = None,
) -> tuple[list[Phase], list[str], float]:
    """One run on a fresh server: idle, then loaded (with ``profile``: loaded only, under
    py-spy). The phases (with the server's collections), the server log's problems, and
    (profiled) the server's CPU %."""
    gc_log = workdir / f"run-{run}-gc.log"
    async with (
        bench_server(workdir / f"run-{run}", users=USERS, gc_log=gc_log) as server,
        browser_ends(server) as ends,
    ):
        devices = _Devices()
        try:
            await devices.start(server, await _login(server, [BROWSER_CALLER, BROWSER_CALLEE]))
            for index in range(WARM_UP * len(CASES)):
                await devices.call(index % len(CASES))
            phases = []
            if profile is None:
                phases.append(await _idle(devices, server, run, calls))
            else:
                await server.start_profile(profile)
            phases.append(
                await _loaded(devices, ends, run, calls, rate=rate, background=background)
            )
            if profile is not None:
                await server.stop_profile()
        finally:
            await devices.close()
        pauses = read_pauses(gc_log)
        for phase in phases:
            end = phase.start + phase.seconds
            phase.pauses = [p for p in pauses if p.end > phase.start and p.start < end]
        return phases, server.log_problems(), phases[-1].percent(phases[-1].server_cpu_seconds)


async def measure_ringing(
    workdir: Path,
    runs: int,
    command: str,
    *,
    calls: int = CALLS,
    rate: float = RATE,
    background: int = BACKGROUND,
    profile: bool = False,
) -> RingingResult:
    """``runs`` runs of ``calls`` of each kind and load; with ``profile``, one more run's
    loaded phase under py-spy (if installed)."""
    result = RingingResult([], calls, runs, rate, background, command)
    for run in range(runs):
        phases, problems, _ = await _run(workdir, run, calls, rate, background)
        result.phases += phases
        result.problems += problems
    if profile:
        path = workdir / "ringing-py-spy.txt"
        _, _, cpu = await _run(workdir, runs, calls, rate, background, profile=path)
        if path.exists():
            result.profile, result.profile_cpu_percent = read_profile(path), cpu
    return result
