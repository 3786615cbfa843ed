"""Signalling throughput with sipp: call setup rate and registrations per second.

Call setup: the carrier (sipp uac_call.xml from 127.0.0.2, recognised as the trunk, so no
digest) calls the company number; Nuage routes it to user 1001, a sipp uas_answer.xml
registered beforehand, and anchors the media (SDP rewritten, RTP ports taken, though no
RTP flows); the caller hangs up at once. Every call is INVITE/180/200/ACK/BYE/200 on
both legs of the B2BUA. Baseline: the same sipp pair talking directly.

Registrations: sipp register.xml cycles through the users of a 200-user company, each
registration a REGISTER, 401, REGISTER with an MD5 digest, 200 (stored in the
database). Baseline: the same against sipp registrar.xml.

Each rate is stepped up until a step has a failed call, each step run several times on a
fresh server; setup and registration times come from sipp's -trace_rtt (first request
to the 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.ports import free_port
from tests.peers.sipp import SippResult, SippServer, account_row, run_sipp

from bench.profile import Hotspot, read_profile, top_inclusive
from bench.server import (
    CALLEE,
    CARRIER_HOST,
    COMPANY_NUMBER,
    DOMAIN,
    BenchServer,
    bench_server,
    extension,
    sip_password,
)
from bench.stats import median, percentile, rtt_values

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
REGISTERING_USERS = 200
# A step where sipp's retransmissions hide a growing backlog is not a sustained rate,
# even if every call ends up answered: the 99th percentile must stay under this.
SUSTAINED_P99_MS = 1000.0
# Longer than Timer J (32 s), so that the final responses kept to answer retransmissions
# reach the count a server holds in service: a 20 s step never sees them expire.
HELD_SECONDS = 90.0
# A held call set-up run also needs every call's record closed this soon after the load
# ends: a server that answers calls but falls behind on its records is not keeping up.
MAX_RECORDS_LAG_S = 5.0


@dataclass(frozen=True)
class Run:
    rate: float
    attempted: int
    successful: int
    failed: int
    p50_ms: float
    p99_ms: float
    server_cpu_percent: float
    # Seconds from the end of the load until every call's record was closed (held runs).
    records_lag_s: float | None = None

    @property
    def clean(self) -> bool:
        return (
            self.failed == 0
            and self.successful == self.attempted
            and self.p99_ms <= SUSTAINED_P99_MS
            and (self.records_lag_s is None or self.records_lag_s <= MAX_RECORDS_LAG_S)
        )


@dataclass
class Step:
    rate: float
    runs: list[Run] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return all(run.clean for run in self.runs)

    def median(self, attribute: str) -> float:
        return median([getattr(run, attribute) for run in self.runs])


@dataclass
class Stepped:
    """One benchmark: Nuage's steps, the baseline's steps, and a profile at the best rate."""

    steps: list[Step]
    baseline: list[Step]
    seconds: float
    profile: list[Hotspot] | None = None
    profile_nuage: list[Hotspot] | None = None
    profile_rate: float | None = None
    profile_cpu_percent: float | None = None
    main_thread_cpu_percent: float | None = None
    # The best step held once more, on a fresh server, for `held_seconds`.
    held: Step | None = None
    held_seconds: float = 0.0

    @property
    def best(self) -> Step | None:
        """The highest step with no failed call, below the first step with one."""
        best = None
        for step in self.steps:
            if not step.clean:
                break
            best = step
        return best


def _to_run(rate: float, attempted: int, result: SippResult, workdir: Path, cpu: float) -> Run:
    times = rtt_values(workdir)
    return Run(
        rate,
        attempted,
        result.successful,
        max(result.failed, attempted - result.successful),
        percentile(times, 0.5),
        percentile(times, 0.99),
        cpu,
    )


async def _drained(server: BenchServer, within: float = 30.0) -> None:
    """Wait until the server has no call left from the previous run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if (await asyncio.to_thread(server.counters)).get("active_calls", 0) == 0:
            return
        await asyncio.sleep(0.2)


async def _load(
    scenario: str,
    target: str,
    workdir: Path,
    rate: float,
    *,
    seconds: float,
    server: BenchServer | None,
    source: str = "127.0.0.1",
    service: str | None = None,
    inject: list[list[str]] | None = None,
) -> Run:
    """One sipp client run at `rate` for `seconds`; server CPU is sampled around it."""
    calls = int(rate * seconds)
    cpu_before = server.cpu_seconds() if server is not None else 0.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run_sipp(
        SCENARIOS / scenario,
        target,
        workdir=workdir,
        calls=calls,
        rate=rate,
        service=service,
        inject=inject,
        trace_msg=False,
        timeout=seconds + 60,
        extra_args=["-i", source, "-trace_rtt", "-rtt_freq", "1"],
    )
    elapsed = loop.time() - started
    cpu = 0.0
    if server is not None and server.process is not None and server.process.returncode is None:
        cpu = 100 * (server.cpu_seconds() - cpu_before) / elapsed
    return _to_run(rate, calls, result, workdir, cpu)


async def _carrier_calls(server: BenchServer, workdir: Path, rate: float, seconds: float) -> Run:
    """The carrier calls the company number at ``rate`` for ``seconds``; each call hangs up
    as soon as it is answered."""
    return await _load(
        "uac_call.xml",
        server.sip_target,
        workdir,
        rate,
        seconds=seconds,
        server=server,
        source=CARRIER_HOST,
        service=COMPANY_NUMBER,
    )


@contextlib.asynccontextmanager
async def _callee(server: BenchServer, workdir: Path, sipp_timeout: float) -> AsyncIterator[None]:
    """User 1001 registered by sipp, then answering as a sipp UAS on the same port."""
    port = free_port()
    registration = await run_sipp(
        SCENARIOS / "register.xml",
        server.sip_target,
        workdir=workdir,
        local_port=port,
        inject=[account_row(CALLEE, sip_password(CALLEE), DOMAIN)],
    )
    registration.assert_ok(1)
    async with SippServer(
        SCENARIOS / "uas_answer.xml",
        workdir=workdir,
        local_port=port,
        trace_msg=False,
        timeout=sipp_timeout,
    ):
        yield


async def _setup_step(workdir: Path, rate: float, runs: int, seconds: float) -> Step:
    step = Step(rate)
    async with (
        bench_server(workdir / "server") as server,
        _callee(server, workdir, runs * (seconds + 90)),
    ):
        for number in range(runs):
            await _drained(server)
            step.runs.append(await _carrier_calls(server, workdir / f"run-{number}", rate, seconds))
    return step


def _closed_records(server: BenchServer) -> int:
    """The call records the server has closed, read from its SQLite file."""
    uri = f"file:{server.workdir / 'data' / 'nuage.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        [count] = db.execute("SELECT count(*) FROM call_records WHERE ended_at IS NOT NULL")
        return int(count[0])


async def _records_lag(server: BenchServer, calls: int, within: float = 60.0) -> float:
    """Seconds until ``calls`` records are closed (infinity if not within ``within``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < within:
        if await asyncio.to_thread(_closed_records, server) >= calls:
            return loop.time() - started
        await asyncio.sleep(0.2)
    return math.inf


async def _held_setup(workdir: Path, rate: float, seconds: float) -> Step:
    """One long run at ``rate`` on a fresh server, and how long its records took."""
    async with bench_server(workdir / "server") as server, _callee(server, workdir, seconds + 90):
        run = await _carrier_calls(server, workdir / "run", rate, seconds)
        lag = await _records_lag(server, run.attempted)
    return Step(rate, [dataclasses.replace(run, records_lag_s=lag)])


async def _profiled_setup(workdir: Path, rate: float, seconds: float) -> Stepped:
    """One run at `rate` with py-spy sampling the server; the hot spots, or none."""
    result = Stepped([], [], seconds, profile_rate=rate)
    async with bench_server(workdir / "server") as server, _callee(server, workdir, seconds + 90):
        output = workdir / "profile.txt"
        if not await server.start_profile(output):
            return result
        threads_before = server.thread_cpu_seconds()
        run = await _carrier_calls(server, workdir / "run", rate, seconds)
        threads = server.thread_cpu_seconds()
        await server.stop_profile()
        result.profile = read_profile(output)
        result.profile_nuage = top_inclusive(output)
        result.profile_cpu_percent = run.server_cpu_percent
        used = sum(threads.values()) - sum(threads_before.values())
        main = threads[server.pid] - threads_before[server.pid]
        result.main_thread_cpu_percent = 100 * main / used if used else None
    return result


async def _baseline_step(
    scenario: str, server_scenario: str, workdir: Path, rate: float, *, runs: int, seconds: float
) -> Step:
    step = Step(rate)
    rows = _accounts()
    async with SippServer(
        SCENARIOS / server_scenario,
        workdir=workdir,
        trace_msg=False,
        timeout=runs * (seconds + 90),
    ) as peer:
        for number in range(runs):
            step.runs.append(
                await _load(
                    scenario,
                    peer.address,
                    workdir / f"run-{number}",
                    rate,
                    seconds=seconds,
                    server=None,
                    service=COMPANY_NUMBER,
                    inject=rows if scenario == "register.xml" else None,
                )
            )
    return step


async def measure_setup_rate(
    workdir: Path, rates: list[float], runs: int, seconds: float, baseline_rate: float
) -> Stepped:
    steps: list[Step] = []
    for rate in rates:
        step = await _setup_step(workdir / f"nuage-{rate:g}", rate, runs, seconds)
        steps.append(step)
        if not step.clean:
            break
    result = Stepped(steps, [], seconds)
    best = result.best
    if best is not None:
        result.held_seconds = max(seconds, HELD_SECONDS)
        result.held = await _held_setup(workdir / "held", best.rate, result.held_seconds)
    profile_rate = best.rate if best is not None else rates[0]
    profiled = await _profiled_setup(workdir / "profile", profile_rate, seconds)
    result.profile = profiled.profile
    result.profile_nuage = profiled.profile_nuage
    result.profile_rate = profile_rate
    result.profile_cpu_percent = profiled.profile_cpu_percent
    result.main_thread_cpu_percent = profiled.main_thread_cpu_percent
    result.baseline.append(
        await _baseline_step(
            "uac_call.xml",
            "uas_answer.xml",
            workdir / "baseline",
            baseline_rate,
            runs=runs,
            seconds=seconds,
        )
    )
    return result


def _accounts() -> list[list[str]]:
    return [
        account_row(extension(i), sip_password(extension(i)), DOMAIN)
        for i in range(REGISTERING_USERS)
    ]


async def _register_step(workdir: Path, rate: float, runs: int, seconds: float) -> Step:
    step = Step(rate)
    async with bench_server(workdir / "server", users=REGISTERING_USERS) as server:
        for number in range(runs):
            step.runs.append(
                await _load(
                    "register.xml",
                    server.sip_target,
                    workdir / f"run-{number}",
                    rate,
                    seconds=seconds,
                    server=server,
                    inject=_accounts(),
                )
            )
    return step


async def measure_registrations(
    workdir: Path, rates: list[float], runs: int, seconds: float, baseline_rate: float
) -> Stepped:
    steps: list[Step] = []
    for rate in rates:
        step = await _register_step(workdir / f"nuage-{rate:g}", rate, runs, seconds)
        steps.append(step)
        if not step.clean:
            break
    baseline = await _baseline_step(
        "register.xml",
        "registrar.xml",
        workdir / "baseline",
        baseline_rate,
        runs=runs,
        seconds=seconds,
    )
    result = Stepped(steps, [baseline], seconds)
    if result.best is not None:
        result.held_seconds = max(seconds, HELD_SECONDS)
        result.held = await _register_step(
            workdir / "held", result.best.rate, 1, result.held_seconds
        )
    return result
