"""A real `nuage serve` process for end-to-end tests, on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from peers.ports import free_port, free_ports
from peers.process import tail

NUAGE = Path(sys.executable).with_name("nuage")
# The carrier's own loopback address: a trunk is recognised by its source address, and the
# phones all use 127.0.0.1.
CARRIER_HOST = "127.0.0.2"
DOMAIN = "acme.example"

USERS = {
    "1001": ("Élodie Martin", "elodie@acme.example", "sip-1001"),
    "1002": ("Lucas Dubois", "lucas@acme.example", "sip-1002"),
    "1003": ("Camille Lambert", "camille@acme.example", "sip-1003"),
}


# For the tests of how calls fail (busy, no answer, no device): no voicemail takes them.
NO_VOICEMAIL = "".join(
    f"""
[[voicemail]]
extension = "{extension}"
enabled = false
"""
    for extension in USERS
)


def acme_plan(carrier_port: int, *, extra: str = "", trunk_options: str = "") -> str:
    """The issue's example plan, with three users and the trunk on the carrier's address;
    ``trunk_options`` are more TOML lines for the trunk (credentials, register)."""
    users = "".join(
        f"""
[[users]]
name = "{name}"
extension = "{extension}"
email = "{email}"
password = "app-{extension}"
sip_password = "{sip_password}"
"""
        for extension, (name, email, sip_password) in USERS.items()
    )
    return f"""
[company]
name = "Acme"
domain = "{DOMAIN}"
country = "BE"
language = "fr"
{users}
[[trunks]]
name = "carrier"
host = "{CARRIER_HOST}:{carrier_port}"
transport = "udp"
{trunk_options}
[[numbers]]
number = "+3225550100"
route = "1001"

[policy]
allowed_countries = ["BE", "NL", "FR"]
blocked_prefixes = ["+3290"]
max_external_calls = 10
{extra}"""


@dataclass
class NuageProcess:
    workdir: Path
    sip_port: int
    http_port: int
    config_path: Path
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def sip_target(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    async def start(self, within: float = 20.0) -> None:
        log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            str(NUAGE),
            "serve",
            "--config",
            str(self.config_path),
            stdout=log,
            stderr=log,
            cwd=self.workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            if self.process.returncode is not None:
                raise AssertionError(f"nuage exited at start-up:\n{tail(self.log_path)}")
            if await asyncio.to_thread(self._healthy):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"nuage not healthy after {within} s:\n{tail(self.log_path)}")

    def _healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.http_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    async def counters(self) -> dict[str, int]:
        def fetch() -> dict[str, int]:
            url = f"http://127.0.0.1:{self.http_port}/healthz"
            with urllib.request.urlopen(url, timeout=5) as response:
                counters: dict[str, int] = json.load(response)["counters"]
                return counters

        return await asyncio.to_thread(fetch)

    async def wait_for_calls(self, count: int, within: float = 10.0) -> None:
        """Until the server has ``count`` live calls."""
        await self.wait_for_counter("active_calls", count, within)

    async def wait_for_counter(self, name: str, value: int, within: float = 10.0) -> None:
        """Until the /healthz counter ``name`` equals ``value`` (the server is another
        process: poll it)."""
        for _ in range(int(within / 0.05)):
            if (await self.counters())[name] == value:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} not {value} after {within} s: {await self.counters()}")

    async def assert_idle(self, within: float = 5.0) -> None:
        """No call, media session or RTP port left behind once calls are over."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            counters = await self.counters()
            idle = (
                counters["active_calls"] == 0
                and counters["media_sessions"] == 0
                and counters["rtp_ports_in_use"] == 0
            )
            if idle:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"server not idle: {counters}")
            await asyncio.sleep(0.1)

    async def provision(self, plan: str) -> str:
        """Apply the plan; on a running server, return once the server has reloaded it."""
        running = self.process is not None and self.process.returncode is None
        before = (await self.counters())["directory_revision"] if running else 0
        path = self.workdir / "plan.toml"
        path.write_text(plan)
        report = await self.cli("provision", str(path))
        if running and "changes: applied" in report:
            await self._wait_for_revision(before + 1)
        return report

    async def _wait_for_revision(self, revision: int, within: float = 10.0) -> None:
        for _ in range(int(within / 0.05)):
            if (await self.counters())["directory_revision"] >= revision:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"server did not reload the directory within {within} s")

    async def cli(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            str(NUAGE),
            *args,
            "--config",
            str(self.config_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.workdir,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        text = output.decode()
        if process.returncode != 0:
            raise AssertionError(f"nuage {' '.join(args)} failed ({process.returncode}):\n{text}")
        return text

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def log(self) -> str:
        return tail(self.log_path, 80)


@contextlib.asynccontextmanager
async def e2e_database(base: str | None = None) -> AsyncIterator[str | None]:
    """A fresh PostgreSQL database on ``base`` (by default NUAGE_TEST_DATABASE_URL, set by
    `make pg-test`), dropped afterwards; None means the server's default SQLite file."""
    base = base or os.environ.get("NUAGE_TEST_DATABASE_URL")
    if base is None:
        yield None
        return
    name = f"nuage_e2e_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield str(make_url(base).set(database=name))
    finally:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


def make_nuage(
    workdir: Path,
    *,
    ring_timeout: float = 30.0,
    media_timeout: float = 60.0,
    database_url: str | None = None,
    redis: tuple[str, str] | None = None,
) -> NuageProcess:
    """A server process to start; ``redis`` is its Redis URL and key prefix."""
    workdir.mkdir(parents=True, exist_ok=True)
    sections = "" if database_url is None else f'[database]\nurl = "{database_url}"\n'
    if redis is not None:
        sections += f'[redis]\nurl = "{redis[0]}"\nkey_prefix = "{redis[1]}"\n'

    sip_port, http_port = free_port(), free_port()
    rtp_min = free_ports(64)
    rtp_min += rtp_min % 2
    config = workdir / "nuage.toml"
    config.write_text(
        f"""
[server]
sip_host = "127.0.0.1"
sip_port = {sip_port}
http_host = "127.0.0.1"
http_port = {http_port}
rtp_port_min = {rtp_min}
rtp_port_max = {rtp_min + 60}
data_dir = "{workdir / "data"}"
ring_timeout = {ring_timeout}
media_timeout = {media_timeout}
{sections}"""
    )
    return NuageProcess(workdir, sip_port, http_port, config, workdir / "nuage.log")


@contextlib.asynccontextmanager
async def running_nuage(
    workdir: Path, plan: str, *, ring_timeout: float = 30.0, media_timeout: float = 60.0
) -> AsyncIterator[NuageProcess]:
    async with e2e_database() as database_url:
        nuage = make_nuage(
            workdir,
            ring_timeout=ring_timeout,
            media_timeout=media_timeout,
            database_url=database_url,
        )
        await nuage.provision(plan)
        await nuage.start()
        try:
            yield nuage
        finally:
            await nuage.stop()
