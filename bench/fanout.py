"""Presence fan-out (issue 4): from one user's status change (PUT /api/v1/me/status) to
its `presence.status` event on each of 1,000 WebSocket clients of the company, each
its own user with its own session (bench/company.py: 1,000 users, logged in once).

The clients run in another process (bench/ws_clients.py), the status changes come from
this one on a fixed schedule (open loop: `spacing` s apart, whatever the deliveries
do). A delivery's latency is its arrival in the client process minus the time the PUT
was written (CLOCK_MONOTONIC, the same in both processes). Each change is made by
another user (so each event is told apart by its user_id). Per run: `changes` changes;
medians of the runs' percentiles, and max over all deliveries.

Variants, in the same run:
- baseline: a bare uvloop broadcaster (bench/ws_baseline.py) with the same clients, the
  PUT replaced by a POST of an event of the same size: what the machine and the client
  process cost by themselves;
- Nuage, one node (SQLite), the clients offering permessage-deflate as browsers do;
- the same without permessage-deflate (what compression costs the server);
- two nodes sharing PostgreSQL and Redis, the clients split over both, the PUT to the
  first.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.peers.ports import free_port
from tests.peers.process import spawn, wait_or_kill

from bench.company import Company, prepared_company
from bench.http_load import HttpPool
from bench.profile import Hotspot, read_profile
from bench.server import BenchServer
from bench.stats import machine_busy_seconds, median, percentile

ROOT = Path(__file__).resolve().parents[1]
USERS = 1000
CHANGES = 50
SPACING = 0.25  # s between two status changes
TARGET_MS = 100.0
KEYS = ("meeting", "lunch", "away", "dnd")
# The event a status change makes, for the baseline (same size and shape).
_SAMPLE_STATUS = {
    "key": "meeting",
    "name": "En réunion",
    "colour": "#ef6c00",
    "behaviour": "voicemail",
    "forward_to": None,
    "pause_acd": False,
}


@dataclass
class FanoutRun:
    latencies_ms: list[float]  # every delivery
    expected: int
    put_ms: list[float]  # the PUT's own response time, per change
    first_ms: list[float]  # per change: its first delivery
    last_ms: list[float]  # per change: its last delivery
    server_cpu_percent: float  # of one core, all server processes together
    client_cpu_percent: float
    others_cpu_percent: float
    by_node: dict[int, list[float]] = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        return len(self.latencies_ms)

    def p(self, fraction: float) -> float:
        return percentile(self.latencies_ms, fraction)


@dataclass
class Variant:
    name: str
    nodes: int
    connected: int = 0
    failed: int = 0
    closed: list[list[Any]] = field(default_factory=list)
    runs: list[FanoutRun] = field(default_factory=list)
    profile: list[Hotspot] | None = None
    profile_cpu_percent: float = 0.0

    def median(self, figure: str) -> float:
        values = {
            "p50": [r.p(0.5) for r in self.runs],
            "p99": [r.p(0.99) for r in self.runs],
            "put": [median(r.put_ms) for r in self.runs],
            "first": [median(r.first_ms) for r in self.runs],
            "last": [median(r.last_ms) for r in self.runs],
            "last_p99": [percentile(r.last_ms, 0.99) for r in self.runs],
            "server_cpu": [r.server_cpu_percent for r in self.runs],
            "client_cpu": [r.client_cpu_percent for r in self.runs],
            "others_cpu": [r.others_cpu_percent for r in self.runs],
        }[figure]
        return median(values)

    @property
    def max_ms(self) -> float:
        return max((max(r.latencies_ms, default=0.0) for r in self.runs), default=float("nan"))

    @property
    def delivered(self) -> tuple[int, int]:
        return sum(r.delivered for r in self.runs), sum(r.expected for r in self.runs)


@dataclass
class FanoutResult:
    clients: int
    changes: int
    spacing: float
    variants: list[Variant]
    command: str


def _usage(pids: list[int]) -> float:
    return sum(_cpu_seconds(pid) for pid in pids)


def _busy() -> float:
    return machine_busy_seconds()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Clients:
    """The client process: connect, then record until stopped."""

    def __init__(self, workdir: Path, targets: list[int], tokens: list[str], deflate: bool):
        self.workdir = workdir
        self.targets = targets
        self.tokens = tokens
        self.deflate = deflate
        self.process: asyncio.subprocess.Process | None = None
        self.output = workdir / "arrivals.json"

    async def start(self) -> tuple[int, int]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tokens = self.workdir / "tokens.txt"
        tokens.write_text("\n".join(self.tokens))
        argv = [sys.executable, "-m", "bench.ws_clients", "--tokens", str(tokens)]
        argv += ["--target", ",".join(f"127.0.0.1:{port}" for port in self.targets)]
        argv += ["--out", str(self.output)]
        argv += ["--deflate"] if self.deflate else []
        with (self.workdir / "clients.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
            )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 300)
        words = line.decode().split()
        if not words or words[0] != "ready":
            raise RuntimeError(f"clients did not start: {line!r}")
        return int(words[1]), int(words[2])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def stop(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(b"stop\n")
        await self.process.stdin.drain()
        await asyncio.wait_for(self.process.stdout.readline(), 120)
        await wait_or_kill(self.process, 30)
        result: dict[str, Any] = json.loads(self.output.read_text())
        return result

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            await wait_or_kill(self.process, 0)


@dataclass
class _Change:
    user_id: int
    sent: float
    answered: float = float("nan")
    status: int = 0


async def _changes(
    pool: HttpPool,
    requests: list[tuple[int, bytes]],
    spacing: float,
) -> list[_Change]:
    """Send the requests (user_id, raw) on schedule; their send and answer times."""
    done: list[_Change] = []
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic() + 0.05

    async def one(user_id: int, raw: bytes) -> None:
        change = _Change(user_id, time.monotonic())
        done.append(change)
        try:
            change.status, _ = await pool.request(raw)
        except OSError:
            change.status = 0
        change.answered = time.monotonic()

    for index, (user_id, raw) in enumerate(requests):
        delay = start + index * spacing - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(user_id, raw)))
    await asyncio.wait(tasks, timeout=30)
    return done


def _status_requests(
    pool: HttpPool, company: Company, first: int, count: int
) -> list[tuple[int, bytes]]:
    requests = []
    for index in range(first, first + count):
        body = json.dumps({"key": KEYS[index % len(KEYS)]}).encode()
        token = company.access_tokens[index]
        requests.append(
            (company.user_ids[index], pool.build("PUT", "/api/v1/me/status", token, body))
        )
    return requests


def _baseline_requests(
    pool: HttpPool, user_ids: list[int], first: int, count: int
) -> list[tuple[int, bytes]]:
    requests = []
    for index in range(first, first + count):
        event = {
            "type": "presence.status",
            "sequence": index + 1,
            "timestamp": "2026-11-26T18:00:00.000+00:00",
            "data": {"user_id": user_ids[index], "status": _SAMPLE_STATUS},
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        requests.append((user_ids[index], pool.build("POST", "/broadcast", None, body)))
    return requests


def _analyse(
    changes: list[_Change],
    arrivals: list[list[Any]],
    connected: int,
    node_of: dict[int, int],
) -> tuple[list[float], list[float], list[float], dict[int, list[float]]]:
    by_user = {change.user_id: change for change in changes}
    latencies: list[float] = []
    per_change: dict[int, list[float]] = {change.user_id: [] for change in changes}
    by_node: dict[int, list[float]] = {}
    for connection, arrival, _, kind, user_id, _ in arrivals:
        change = by_user.get(user_id)
        if kind != "presence.status" or change is None:
            continue
        latency = 1000 * (arrival - change.sent)
        latencies.append(latency)
        per_change[user_id].append(latency)
        by_node.setdefault(node_of.get(connection, 0), []).append(latency)
    first = [min(v) for v in per_change.values() if v]
    last = [max(v) for v in per_change.values() if v]
    return latencies, first, last, by_node


@dataclass(frozen=True)
class Schedule:
    runs: int
    changes: int  # per run
    spacing: float  # s between two changes


async def _measure(
    variant: Variant,
    clients: Clients,
    make: Callable[[int, int], list[tuple[int, bytes]]],
    schedule: Schedule,
    *,
    pool: HttpPool,
    server_pids: list[int],
    workdir: Path,
    profile_server: BenchServer | None,
) -> None:
    """`runs` rounds of `changes` changes; the arrivals are read once at the end."""
    runs, changes, spacing = schedule.runs, schedule.changes, schedule.spacing
    node_of = {i: i % len(clients.targets) for i in range(len(clients.tokens))}
    rounds: list[tuple[list[_Change], float, float, float]] = []
    # A connection ready for the first change, then let the connections' start settle.
    await pool.request(pool.build("GET", "/healthz"))
    await asyncio.sleep(2.0)
    for run in range(runs):
        server, client, busy = _usage(server_pids), _cpu_seconds(clients.pid), _busy()
        started = time.monotonic()
        sent = await _changes(pool, make(run * changes, changes), spacing)
        await asyncio.sleep(1.0)  # the last deliveries
        wall = time.monotonic() - started
        server = _usage(server_pids) - server
        client = _cpu_seconds(clients.pid) - client
        busy = _busy() - busy
        shares = (100 * server / wall, 100 * client / wall, 100 * (busy - server - client) / wall)
        rounds.append((sent, *shares))
    if profile_server is not None and await profile_server.start_profile(workdir / "py-spy.txt"):
        cpu, started = _usage([profile_server.pid]), time.monotonic()
        await _changes(pool, make(runs * changes, changes), spacing)
        await asyncio.sleep(1.0)
        used = _usage([profile_server.pid]) - cpu
        variant.profile_cpu_percent = 100 * used / (time.monotonic() - started)
        await profile_server.stop_profile()
        path = workdir / "py-spy.txt"
        variant.profile = await asyncio.to_thread(read_profile, path, 25)
    output = await clients.stop()
    variant.closed = output["closed"]
    connected = output["connected"]
    for sent, server_cpu, client_cpu, others_cpu in rounds:
        latencies, first, last, by_node = _analyse(sent, output["arrivals"], connected, node_of)
        bad = sum(1 for change in sent if not 200 <= change.status < 300)
        if bad:
            print(f"    {bad} status changes failed", flush=True)
        variant.runs.append(
            FanoutRun(
                latencies,
                connected * len(sent),
                [1000 * (c.answered - c.sent) for c in sent],
                first,
                last,
                server_cpu,
                client_cpu,
                others_cpu,
                by_node,
            )
        )


async def _baseline(
    workdir: Path, tokens: list[str], user_ids: list[int], schedule: Schedule
) -> Variant:
    variant = Variant("baseline: bare uvloop broadcaster", 1)
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    port = free_port()
    argv = [sys.executable, "-m", "bench.ws_baseline", "--port", str(port)]
    server = await spawn(argv, workdir / "baseline.log", ROOT)
    clients = Clients(workdir / "clients", [port], tokens, deflate=True)
    pool = HttpPool("127.0.0.1", port)
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        variant.connected, variant.failed = await clients.start()

        def make(first: int, count: int) -> list[tuple[int, bytes]]:
            return _baseline_requests(pool, user_ids, first, count)

        await _measure(
            variant,
            clients,
            make,
            schedule,
            pool=pool,
            server_pids=[server.pid],
            workdir=workdir,
            profile_server=None,
        )
    finally:
        pool.close()
        await clients.kill()
        await wait_or_kill(server, 0)
    return variant


async def _nuage(
    workdir: Path,
    name: str,
    schedule: Schedule,
    *,
    deflate: bool,
    two_nodes: bool = False,
    profile: bool = False,
) -> Variant:
    variant = Variant(name, 2 if two_nodes else 1)
    async with prepared_company(
        workdir, USERS, postgresql=two_nodes, nodes=2 if two_nodes else 1, redis=two_nodes
    ) as company:
        ports = [node.server.http_port for node in company.nodes]
        clients = Clients(workdir / "clients", ports, company.access_tokens, deflate=deflate)
        pool = HttpPool("127.0.0.1", ports[0])
        try:
            variant.connected, variant.failed = await clients.start()

            def make(first: int, count: int) -> list[tuple[int, bytes]]:
                return _status_requests(pool, company, first, count)

            await _measure(
                variant,
                clients,
                make,
                schedule,
                pool=pool,
                server_pids=[node.server.pid for node in company.nodes],
                workdir=workdir,
                profile_server=company.nodes[0].server if profile else None,
            )
            problems = [p for node in company.nodes for p in node.server.log_problems()]
            if problems:
                print(f"    {len(problems)} warnings/errors in the server logs", flush=True)
        finally:
            pool.close()
            await clients.kill()
    return variant


async def measure_fanout(
    workdir: Path,
    runs: int,
    command: str,
    *,
    changes: int = CHANGES,
    spacing: float = SPACING,
    no_deflate: bool = True,
    two_nodes: bool = True,
    profile: bool = False,
    log: Callable[[str], None] = print,
) -> FanoutResult:
    schedule = Schedule(runs, changes, spacing)
    log("  fan-out: Nuage, one node (SQLite), clients offering permessage-deflate")
    variants = [
        await _nuage(
            workdir / "one-node",
            "Nuage, 1 node (SQLite), permessage-deflate",
            schedule,
            deflate=True,
            profile=profile,
        )
    ]
    # The baseline needs no server: the same number of clients, the same user ids.
    log("  fan-out: baseline (bare broadcaster)")
    tokens = [f"t{i}" for i in range(USERS)]
    ids = list(range(10_000, 10_000 + USERS))
    variants.insert(0, await _baseline(workdir / "baseline", tokens, ids, schedule))
    if no_deflate:
        log("  fan-out: Nuage, one node, no permessage-deflate")
        name = "Nuage, 1 node (SQLite), no compression"
        variants.append(await _nuage(workdir / "no-deflate", name, schedule, deflate=False))
    if two_nodes:
        log("  fan-out: Nuage, two nodes (PostgreSQL + Redis)")
        name = (
            "Nuage, 2 nodes (PostgreSQL + Redis), permessage-deflate, clients split, PUT to node 1"
        )
        variants.append(
            await _nuage(
                workdir / "two-nodes", name, schedule, deflate=True, two_nodes=True, profile=profile
            )
        )
    return FanoutResult(USERS, changes, spacing, variants, command)
