"""A real `nuage serve` process for benchmarks: many users, a wide RTP range, and the
figures a benchmark reads from outside (RSS, live counters, a py-spy profile)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.ports import free_port
from tests.peers.process import spawn, tail, wait_or_kill

NUAGE = Path(sys.executable).with_name("nuage")
GC_PAUSES = Path(__file__).resolve().with_name("gc_pauses.py")
PY_SPY = Path(sys.executable).with_name("py-spy")
DOMAIN = "acme.example"
# The carrier's own loopback address: Nuage recognises a trunk by its source address.
CARRIER_HOST = "127.0.0.2"
COMPANY_NUMBER = "+3225550100"
# Extension of the user that the company number rings; the other users only register.
CALLEE = "1001"
# 750 calls (the hold benchmark's largest step) anchored on two legs each, plus headroom
# for calls still ending. The range sits below the test harness's (20000-32000) and the
# kernel's ephemeral ports; Nuage skips any port in it that another program holds.
RTP_PAIRS = 1800
RTP_PORT_MIN = 12000


def extension(index: int) -> str:
    return str(1001 + index)


def sip_password(ext: str) -> str:
    return f"sip-{ext}"


def bench_plan(users: int, carrier_port: int) -> str:
    """The issue's plan with `users` users; the company number rings 1001."""
    entries = "".join(
        f"""
[[users]]
name = "User {extension(i)}"
extension = "{extension(i)}"
email = "u{extension(i)}@{DOMAIN}"
password = "app-{extension(i)}"
sip_password = "{sip_password(extension(i))}"
"""
        for i in range(users)
    )
    return f"""
[company]
name = "Acme"
domain = "{DOMAIN}"
country = "BE"
language = "fr"
{entries}
[[trunks]]
name = "carrier"
host = "{CARRIER_HOST}:{carrier_port}"
transport = "udp"

[[numbers]]
number = "{COMPANY_NUMBER}"
route = "{CALLEE}"

[policy]
allowed_countries = ["BE"]
max_external_calls = 10
"""


@dataclass
class BenchServer:
    workdir: Path
    sip_port: int
    http_port: int
    # With a path: the server runs under bench/gc_pauses.py, which logs its collections there.
    gc_log: Path | None = None
    process: asyncio.subprocess.Process | None = None
    profiler: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def sip_target(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_kib(self) -> int:
        """The server's resident set (VmRSS) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu_seconds(self) -> dict[int, float]:
        """CPU time per thread (the main thread's id is the pid)."""
        figures: dict[int, float] = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except FileNotFoundError:
                continue  # the thread ended meanwhile
            fields = stat.rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            figures[int(task.name)] = ticks / os.sysconf("SC_CLK_TCK")
        return figures

    def counters(self) -> dict[str, int]:
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            counters: dict[str, int] = json.load(response)["counters"]
        return counters

    def log_problems(self) -> list[str]:
        """The server log's WARNING, ERROR and CRITICAL lines and tracebacks, in order."""
        path = self.workdir / "nuage.log"
        if not path.exists():
            return []
        return [
            line
            for line in path.read_text(errors="replace").splitlines()
            if any(f" {level} " in line for level in ("WARNING", "ERROR", "CRITICAL"))
            or line.startswith("Traceback")
        ]

    def _healthy(self) -> bool:
        try:
            self.counters()
        except OSError:
            return False
        return True

    async def start(self, within: float = 30.0) -> None:
        log = self.workdir / "nuage.log"
        argv = ["serve", "--config", str(self.workdir / "nuage.toml")]
        if self.gc_log is None:
            argv = [str(NUAGE), *argv]
        else:
            argv = [sys.executable, str(GC_PAUSES), str(self.gc_log), *argv]
        self.process = await spawn(argv, log, self.workdir)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not await asyncio.to_thread(self._healthy):
            if self.process.returncode is not None or loop.time() > deadline:
                raise RuntimeError(f"nuage did not start:\n{tail(log)}")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await self.stop_profile()
        if self.process is not None and self.process.returncode is None:
            await wait_or_kill(self.process, 0)

    async def start_profile(self, output: Path) -> bool:
        """Sample the server with py-spy (if installed) until `stop_profile`."""
        if not PY_SPY.exists() and shutil.which("py-spy") is None:
            return False
        argv = [str(PY_SPY if PY_SPY.exists() else "py-spy"), "record", "--pid", str(self.pid)]
        # --gil: only samples where the loop thread runs Python, so idle waits (the
        # database thread blocked on its queue) do not pose as hot spots.
        argv += ["--format", "raw", "--output", str(output), "--rate", "200", "--gil"]
        argv += ["--nonblocking"]
        self.profiler = await spawn(argv, self.workdir / "py-spy.log", self.workdir)
        return True

    async def stop_profile(self) -> None:
        # py-spy writes its output when interrupted, as on Ctrl-C.
        if self.profiler is not None and self.profiler.returncode is None:
            self.profiler.send_signal(2)
            await wait_or_kill(self.profiler, 20)
        self.profiler = None


async def _provision(workdir: Path, plan: str) -> None:
    path = workdir / "plan.toml"
    path.write_text(plan)
    argv = [str(NUAGE), "provision", str(path), "--config", str(workdir / "nuage.toml")]
    proc = await spawn(argv, workdir / "provision.log", workdir)
    if await wait_or_kill(proc, 120) != 0:
        raise RuntimeError(f"provisioning failed:\n{tail(workdir / 'provision.log')}")


@contextlib.asynccontextmanager
async def bench_server(
    workdir: Path, *, users: int = 3, carrier_port: int = 5999, gc_log: Path | None = None
) -> AsyncIterator[BenchServer]:
    """A fresh server (new data directory) with `users` users, stopped on exit; with
    `gc_log`, its garbage collections are logged there (bench/gc_pauses.py)."""
    await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)
    await asyncio.to_thread(workdir.mkdir, parents=True)
    server = BenchServer(workdir, free_port(), free_port(), gc_log)
    (workdir / "nuage.toml").write_text(
        f"""
[server]
sip_host = "127.0.0.1"
sip_port = {server.sip_port}
http_host = "127.0.0.1"
http_port = {server.http_port}
rtp_port_min = {RTP_PORT_MIN}
rtp_port_max = {RTP_PORT_MIN + 2 * RTP_PAIRS - 1}
data_dir = "{workdir / "data"}"
"""
    )
    await _provision(workdir, bench_plan(users, carrier_port))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
