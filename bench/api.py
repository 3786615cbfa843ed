"""REST API latency at a steady rate (issue 4): directory search and favorites against a
`nuage serve` of a 300-user company, open-loop, with GET /healthz at the same rate as
the baseline (the HTTP stack's own cost: uvicorn, FastAPI routing, a JSON answer; no
token, no database).

Each run measures every phase once, `seconds` each, in turn (so that the machine's
noise falls on all of them alike): healthz, search (GET /api/v1/directory?q=...),
favorites (GET /api/v1/favorites: 8 starred colleagues each), star (PUT and DELETE
/api/v1/favorites/{id} alternately, so the table does not grow). Requests rotate over
the company's 300 sessions (each authenticated: one session row read per request).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from bench.company import Company, favorites_of, people, prepared_company
from bench.http_load import HttpPool, Sample, open_loop
from bench.profile import Hotspot, read_profile
from bench.stats import machine_busy_seconds, median, percentile

USERS = 300
FAVORITES = 8
RATE = 200.0
PHASES = ("healthz", "search", "favorites", "star")
# What is reported: the star phase's PUT and DELETE apart (its CPU is the phase's).
KINDS = ("healthz", "search", "favorites", "star (PUT)", "star (DELETE)")
WARM_UP = 3.0


@dataclass
class PhaseRun:
    samples: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    lateness_p99_ms: float  # the generator's own delay in sending
    server_cpu_percent: float
    generator_cpu_percent: float
    others_cpu_percent: float
    failures: dict[int, int] = field(default_factory=dict)  # status (0: none) -> count

    @property
    def server_us_per_request(self) -> float:
        return 1e4 * self.server_cpu_percent / RATE


@dataclass
class Backend:
    name: str
    runs: dict[str, list[PhaseRun]] = field(default_factory=lambda: {k: [] for k in KINDS})
    connections: int = 0
    profile: list[Hotspot] | None = None
    profile_phase: str = ""

    def median(self, kind: str, figure: str) -> float:
        return median([getattr(run, figure) for run in self.runs[kind]])


@dataclass
class ApiResult:
    backends: list[Backend]
    rate: float
    seconds: float
    runs: int
    command: str


def _queries(count: int = 60, seed: int = 7) -> list[str]:
    """What people type in the search box: the start of a first or last name (with or
    without its accents), a fragment, an extension's first digits, a whole name, the odd
    miss."""
    rng = random.Random(seed)
    staff = people(USERS)
    found: list[str] = []
    for _ in range(count):
        person = rng.choice(staff)
        first, _, last = person.name.partition(" ")
        kind = rng.random()
        if kind < 0.3:
            found.append(first[: rng.randint(2, 4)].lower())
        elif kind < 0.55:
            found.append(last[: rng.randint(3, 5)])
        elif kind < 0.65:
            found.append(person.extension[: rng.randint(2, 3)])
        elif kind < 0.75:
            start = rng.randint(1, max(1, len(last) - 3))
            found.append(last[start : start + 3].lower())
        elif kind < 0.85:
            found.append(person.name)
        elif kind < 0.95:
            found.append(person.email[:4])
        else:
            found.append(rng.choice(["xyz", "zzq", "qw"]))
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _requests(pool: HttpPool, company: Company, phase: str) -> Callable[[int], tuple[str, bytes]]:
    tokens, ids = company.access_tokens, company.user_ids
    users = len(tokens)
    queries = [quote(q) for q in _queries()]
    healthz = pool.build("GET", "/healthz")

    def make(index: int) -> tuple[str, bytes]:
        if phase == "healthz":
            return phase, healthz
        if phase == "search":
            query = queries[index % len(queries)]
            path = f"/api/v1/directory?q={query}&limit=50"
            return phase, pool.build("GET", path, tokens[index % users])
        if phase == "favorites":
            return phase, pool.build("GET", "/api/v1/favorites", tokens[index % users])
        # star: PUT then DELETE of the same colleague, one not among the person's favorites.
        pair = index // 2
        person = pair % users
        colleague = (person + users // 2) % users
        assert colleague not in favorites_of(person, users, FAVORITES)
        method = "PUT" if index % 2 == 0 else "DELETE"
        label = "star (PUT)" if method == "PUT" else "star (DELETE)"
        return label, pool.build(method, f"/api/v1/favorites/{ids[colleague]}", tokens[person])

    return make


async def _phase(
    pool: HttpPool, company: Company, phase: str, seconds: float
) -> dict[str, PhaseRun]:
    pid = company.nodes[0].server.pid
    server_before, own_before = _cpu_seconds(pid), _cpu_seconds(os.getpid())
    busy_before = machine_busy_seconds()
    loop = asyncio.get_running_loop()
    started = loop.time()
    samples = await open_loop(pool, _requests(pool, company, phase), RATE, seconds)
    wall = loop.time() - started
    server = _cpu_seconds(pid) - server_before
    own = _cpu_seconds(os.getpid()) - own_before
    busy = machine_busy_seconds() - busy_before
    kinds = sorted({s.kind for s in samples})
    return {
        kind: _summary([s for s in samples if s.kind == kind], wall, server, own, busy)
        for kind in kinds
    }


def _summary(
    samples: list[Sample], wall: float, server: float, own: float, busy: float
) -> PhaseRun:
    good = [s.latency * 1000 for s in samples if 200 <= s.status < 300]
    return PhaseRun(
        samples=len(samples),
        errors=sum(1 for s in samples if not 200 <= s.status < 300),
        p50_ms=percentile(good, 0.5),
        p99_ms=percentile(good, 0.99),
        max_ms=max(good, default=float("nan")),
        lateness_p99_ms=percentile([s.lateness * 1000 for s in samples], 0.99),
        server_cpu_percent=100 * server / wall,
        generator_cpu_percent=100 * own / wall,
        others_cpu_percent=100 * (busy - server - own) / wall,
        failures=dict(Counter(s.status for s in samples if not 200 <= s.status < 300)),
    )


async def _measure_backend(
    workdir: Path, name: str, runs: int, seconds: float, profile: bool
) -> Backend:
    backend = Backend(name)
    async with prepared_company(
        workdir, USERS, postgresql=name == "PostgreSQL", favorites=FAVORITES
    ) as company:
        node = company.nodes[0]
        pool = HttpPool("127.0.0.1", node.server.http_port)
        try:
            for phase in PHASES:  # warm-up: caches, connections, the JIT-less first calls
                await open_loop(pool, _requests(pool, company, phase), RATE, WARM_UP / 2)
            for _ in range(runs):
                for phase in PHASES:
                    for kind, run in (await _phase(pool, company, phase, seconds)).items():
                        backend.runs[kind].append(run)
            if profile and await node.server.start_profile(workdir / "py-spy.txt"):
                kind = max(KINDS, key=lambda k: backend.median(k, "server_cpu_percent"))
                phase = kind.split(" ")[0]
                await _phase(pool, company, phase, seconds)
                await node.server.stop_profile()
                path = workdir / "py-spy.txt"
                backend.profile = read_profile(path) if path.exists() else None
                backend.profile_phase = phase
            backend.connections = pool.opened
        finally:
            pool.close()
    return backend


async def measure_api(
    workdir: Path,
    runs: int,
    seconds: float,
    command: str,
    *,
    postgresql: bool = True,
    profile: bool = False,
) -> ApiResult:
    backends = [await _measure_backend(workdir / "sqlite", "SQLite", runs, seconds, profile)]
    if postgresql:
        backends.append(
            await _measure_backend(workdir / "postgresql", "PostgreSQL", runs, seconds, profile)
        )
    return ApiResult(backends, RATE, seconds, runs, command)
