"""A realistic company for the API and event benchmarks, provisioned and logged in once
and then reused: a generated plan (Belgian names with accents, e-mails, extensions),
every user logged in through the API (one session each), kept as a template (a SQLite
file, or a PostgreSQL database used as CREATE DATABASE's TEMPLATE) with the users'
refresh tokens.

Provisioning hashes every app password with argon2, and every login verifies one:
about 0.1-0.3 s of CPU each on this machine, so 1,300 users cost minutes. A run copies
the template instead and refreshes each session through POST /api/v1/auth/refresh
(a SHA-256 and one row written): fresh access tokens, 1,000 distinct sessions, in
seconds. The template is rebuilt when the plan, the migrations or the backend change,
or when its refresh tokens stopped working (30 days).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import unicodedata
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis.asyncio as redis_client
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from tests.peers.ports import free_port
from tests.peers.process import spawn, tail, wait_or_kill

from bench.server import CARRIER_HOST, NUAGE, BenchServer

DOMAIN = "bench-company.example"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nuage-bench"
# The machine's PostgreSQL (as `make pg-test`); any database of it to connect to.
POSTGRESQL = os.environ.get(
    "NUAGE_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("NUAGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Logins at once while the template is made (argon2 runs in the server's threads).
LOGIN_CONCURRENCY = 6

FIRST_NAMES = [
    "Élodie",
    "Lucas",
    "Camille",
    "Noé",
    "Léa",
    "Hugo",
    "Chloé",
    "Louis",
    "Zoë",
    "Mathéo",
    "Anaïs",
    "Jérôme",
    "Hélène",
    "François",
    "Geneviève",
    "Sébastien",
    "Amélie",
    "Inès",
    "Maëlle",
    "Gaëtan",
    "Céline",
    "Frédéric",
    "Loïc",
    "Agnès",
    "Thibault",
    "Manon",
    "Arnaud",
    "Pauline",
    "Nathalie",
    "Olivier",
    "Sophie",
    "Benoît",
    "Aurélie",
    "Julien",
    "Margaux",
    "Pieter",
    "Annelies",
    "Joris",
    "Sanne",
    "Wout",
    "Lotte",
    "Bram",
    "Fien",
    "Jens",
    "Ine",
    "Stijn",
    "Eline",
    "Thomas",
    "Marie",
    "Emma",
    "Nora",
    "Arthur",
    "Jules",
    "Victor",
    "Louise",
    "Alice",
    "Adam",
    "Mohamed",
    "Yasmine",
    "Sarah",
    "Nicolas",
]
LAST_NAMES = [
    "Martin",
    "Dubois",
    "Lambert",
    "Peeters",
    "Janssens",
    "Maes",
    "Jacobs",
    "Mertens",
    "Willems",
    "Claes",
    "Goossens",
    "Wouters",
    "Dupont",
    "Lefèvre",
    "Leclercq",
    "Renard",
    "Mathieu",
    "Dumont",
    "François",
    "Fontaine",
    "Lejeune",
    "Hermans",
    "Vermeulen",
    "Pauwels",
    "Michiels",
    "Verstraete",
    "Bertrand",
    "Gérard",
    "Noël",
    "Rémy",
    "Simon",
    "Laurent",
    "Denis",
    "Lemaire",
    "Collard",
    "Charlier",
    "Delvaux",
    "Aerts",
    "Smets",
    "Dewulf",
    "Cornélis",
    "Désiré",
    "Lécuyer",
    "Bréda",
    "Ghislain",
    "Hubert",
    "Piérard",
    "Thiry",
    "Verhoeven",
    "Dierickx",
    "Baert",
    "Coppens",
    "Stevens",
]
COMPOUND_LAST_NAMES = ("De Smet", "Van den Broeck", "Van Damme", "De Backer", "Le Gall")


@dataclass(frozen=True)
class Person:
    name: str
    extension: str
    email: str
    password: str


def _ascii(text_: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text_)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def people(count: int, seed: int = 4) -> list[Person]:
    """`count` colleagues with plausible names (some shared, as in any company),
    extensions 1001..., e-mails firstname.lastname[N]@domain."""
    rng = random.Random(seed)
    found: list[Person] = []
    emails: set[str] = set()
    for index in range(count):
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(COMPOUND_LAST_NAMES if rng.random() < 0.08 else LAST_NAMES)
        local = f"{_ascii(first)}.{_ascii(last).replace(' ', '')}"
        email, n = f"{local}@{DOMAIN}", 2
        while email in emails:
            email, n = f"{local}{n}@{DOMAIN}", n + 1
        emails.add(email)
        extension = str(1001 + index)
        found.append(Person(f"{first} {last}", extension, email, f"app-{extension}"))
    return found


def company_plan(staff: Sequence[Person], carrier_port: int = 5999) -> str:
    """A plan: the users (the first two admins), a trunk, five numbers, the default
    statuses."""
    users = "".join(
        f"""
[[users]]
name = "{p.name}"
extension = "{p.extension}"
email = "{p.email}"
password = "{p.password}"
sip_password = "sip-{p.extension}"
role = "{"admin" if i < 2 else "user"}"
"""
        for i, p in enumerate(staff)
    )
    numbers = "".join(
        f'\n[[numbers]]\nnumber = "+32255501{i:02d}"\nroute = "{staff[i * 7].extension}"\n'
        for i in range(min(5, len(staff)))
    )
    return f"""
[company]
name = "Bench Company"
domain = "{DOMAIN}"
country = "BE"
language = "fr"
{users}
[[trunks]]
name = "carrier"
host = "{CARRIER_HOST}:{carrier_port}"
transport = "udp"
{numbers}
[policy]
allowed_countries = ["BE"]
max_external_calls = 10
"""


@dataclass
class Node:
    """One `nuage serve` of a prepared company, with a session per user."""

    server: BenchServer
    database_url: str | None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"


def _write_config(
    workdir: Path, server: BenchServer, database_url: str | None, redis: tuple[str, str] | None
) -> None:
    sections = "" if database_url is None else f'[database]\nurl = "{database_url}"\n'
    if redis is not None:
        sections += f'[redis]\nurl = "{redis[0]}"\nkey_prefix = "{redis[1]}"\n'
    # No calls here: a small RTP range of its own per node, below the ephemeral ports.
    rtp_min = 16000 + 200 * (server.http_port % 40)
    while any(rtp_min <= port < rtp_min + 100 for port in (server.sip_port, server.http_port)):
        rtp_min += 100
    (workdir / "nuage.toml").write_text(
        f"""
[server]
sip_host = "127.0.0.1"
sip_port = {server.sip_port}
http_host = "127.0.0.1"
http_port = {server.http_port}
rtp_port_min = {rtp_min}
rtp_port_max = {rtp_min + 99}
data_dir = "{workdir / "data"}"
{sections}"""
    )


def _node(workdir: Path, database_url: str | None, redis: tuple[str, str] | None) -> Node:
    workdir.mkdir(parents=True, exist_ok=True)
    server = BenchServer(workdir, free_port(), free_port())
    _write_config(workdir, server, database_url, redis)
    return Node(server, database_url)


async def _provision(workdir: Path, plan: str) -> None:
    path = workdir / "plan.toml"
    path.write_text(plan)
    argv = [str(NUAGE), "provision", str(path), "--config", str(workdir / "nuage.toml")]
    proc = await spawn(argv, workdir / "provision.log", workdir)
    if await wait_or_kill(proc, 900) != 0:
        raise RuntimeError(f"provisioning failed:\n{tail(workdir / 'provision.log')}")


def _key(plan: str, backend: str) -> str:
    # Not the migrations: the server upgrades a copied template at its start.
    return hashlib.sha256(f"{plan}\n{backend}".encode()).hexdigest()[:12]


async def _admin(sql: str) -> None:
    engine = create_async_engine(POSTGRESQL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def _database_exists(name: str) -> bool:
    engine = create_async_engine(POSTGRESQL)
    try:
        async with engine.connect() as connection:
            found = await connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            return found.first() is not None
    finally:
        await engine.dispose()


def _url_of(database: str) -> str:
    return str(make_url(POSTGRESQL).set(database=database))


async def _login_all(base_url: str, staff: Sequence[Person]) -> list[tuple[str, str]]:
    """Every user's access and refresh tokens (one login each)."""
    limit = asyncio.Semaphore(LOGIN_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:

        async def login(person: Person) -> tuple[str, str]:
            async with limit:
                response = await client.post(
                    "/api/v1/auth/login", json={"email": person.email, "password": person.password}
                )
            response.raise_for_status()
            tokens = response.json()
            return tokens["access_token"], tokens["refresh_token"]

        return list(await asyncio.gather(*(login(p) for p in staff)))


def favorites_of(index: int, users: int, count: int) -> list[int]:
    """The indexes of the colleagues person `index` starred (the next ones in the list)."""
    return [(index + 1 + k) % users for k in range(count)]


async def _star_favorites(base_url: str, access: Sequence[str], count: int) -> None:
    if count == 0:
        return
    ids = await _user_ids(base_url, access)
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def star(index: int, colleague: int) -> None:
            async with limit:
                response = await client.put(
                    f"/api/v1/favorites/{ids[colleague]}",
                    headers={"Authorization": f"Bearer {access[index]}"},
                )
            response.raise_for_status()

        await asyncio.gather(
            *(
                star(index, colleague)
                for index in range(len(access))
                for colleague in favorites_of(index, len(access), count)
            )
        )


async def refresh_all(base_url: str, refresh_tokens: Sequence[str]) -> list[str] | None:
    """A new access token per session (in order); None if any refresh token no longer
    works."""
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def refresh(token: str) -> str | None:
            async with limit:
                response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
            if response.status_code != 200:
                return None
            access: str = response.json()["access_token"]
            return access

        tokens = await asyncio.gather(*(refresh(t) for t in refresh_tokens))
    if any(token is None for token in tokens):
        return None
    return [token for token in tokens if token is not None]


async def _build_template(
    staff: Sequence[Person], plan: str, workdir: Path, database_url: str | None, favorites: int
) -> list[str]:
    """Provision and log everyone in on a fresh node; the node is stopped afterwards
    (cleanly: SQLite checkpoints its WAL). Returns the refresh tokens."""
    node = _node(workdir, database_url, None)
    print(f"    building the company template ({len(staff)} users: argon2 hashing)", flush=True)
    await _provision(workdir, plan)
    await node.server.start(within=60)
    try:
        tokens = await _login_all(node.base_url, staff)
        await _star_favorites(node.base_url, [access for access, _ in tokens], favorites)
        return [refresh for _, refresh in tokens]
    finally:
        await node.server.stop()


@dataclass
class Company:
    people: list[Person]
    nodes: list[Node]
    access_tokens: list[str]  # one per person, in order, each its own session
    user_ids: list[int]  # of each person, in order


async def _user_ids(base_url: str, tokens: Sequence[str]) -> list[int]:
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def me(token: str) -> int:
            async with limit:
                response = await client.get(
                    "/api/v1/me", headers={"Authorization": f"Bearer {token}"}
                )
            response.raise_for_status()
            user_id: int = response.json()["id"]
            return user_id

        return list(await asyncio.gather(*(me(t) for t in tokens)))


@contextlib.asynccontextmanager
async def prepared_company(
    workdir: Path,
    users: int,
    *,
    postgresql: bool = False,
    nodes: int = 1,
    redis: bool = False,
    favorites: int = 0,
) -> AsyncIterator[Company]:
    """`nodes` running servers sharing one copy of the company's template database
    (SQLite: one node only), every user with a fresh access token of their own session.
    Each person has starred `favorites` colleagues (favorites_of). Everything is stopped
    and dropped on exit."""
    if nodes > 1 and not (postgresql and redis):
        raise ValueError("several nodes share PostgreSQL and Redis")
    await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)
    await asyncio.to_thread(workdir.mkdir, parents=True)
    staff = people(users)
    plan = company_plan(staff)
    backend = "postgresql" if postgresql else "sqlite"
    key = _key(plan, f"{backend} favorites={favorites}")
    cache = CACHE / key
    template_db = f"nuage_bench_tpl_{key}"
    run_db = f"nuage_bench_run_{uuid.uuid4().hex[:10]}"
    prefix = f"nuage-bench-{uuid.uuid4().hex[:10]}:"
    running: list[Node] = []
    try:
        for attempt in range(2):
            tokens_file = cache / "refresh_tokens.json"
            ready = tokens_file.exists() and (
                await _database_exists(template_db) if postgresql else (cache / "nuage.db").exists()
            )
            if not ready:
                await asyncio.to_thread(shutil.rmtree, cache, ignore_errors=True)
                cache.mkdir(parents=True)
                build = workdir / f"template-{attempt}"
                if postgresql:
                    await _admin(f'DROP DATABASE IF EXISTS "{template_db}" WITH (FORCE)')
                    await _admin(f'CREATE DATABASE "{template_db}"')
                refresh_tokens = await _build_template(
                    staff, plan, build, _url_of(template_db) if postgresql else None, favorites
                )
                if not postgresql:
                    for suffix in ("", "-wal", "-shm"):
                        source = build / "data" / f"nuage.db{suffix}"
                        if source.exists():
                            shutil.copy(source, cache / f"nuage.db{suffix}")
                tokens_file.write_text(json.dumps(refresh_tokens))
            refresh_tokens = json.loads(tokens_file.read_text())
            database_url = None
            if postgresql:
                await _admin(f'CREATE DATABASE "{run_db}" TEMPLATE "{template_db}"')
                database_url = _url_of(run_db)
            running = []
            try:
                for index in range(nodes):
                    node = _node(
                        workdir / f"node-{attempt}-{index}",
                        database_url,
                        (REDIS_URL, prefix) if redis else None,
                    )
                    if not postgresql:
                        data = node.server.workdir / "data"
                        data.mkdir()
                        for path in cache.glob("nuage.db*"):
                            shutil.copy(path, data / path.name)
                    # One at a time: the first start migrates the database if need be.
                    running.append(node)
                    await node.server.start(within=60)
                access = await refresh_all(running[0].base_url, refresh_tokens)
                if access is not None:
                    break
                failure = "the template's sessions do not refresh (expired?)"
            except RuntimeError as error:  # e.g. a template newer than this code's schema
                if attempt:
                    raise
                failure = str(error)
            print(f"    company template unusable ({failure}); making it again", flush=True)
            for node in running:
                await node.server.stop()
            running = []
            if postgresql:
                await _admin(f'DROP DATABASE IF EXISTS "{run_db}" WITH (FORCE)')
            await asyncio.to_thread(shutil.rmtree, cache, ignore_errors=True)
        else:
            raise RuntimeError("the company template's sessions do not refresh")
        ids = await _user_ids(running[0].base_url, access)
        yield Company(staff, running, access, ids)
    finally:
        for node in reversed(running):
            await node.server.stop()
        if postgresql:
            await _admin(f'DROP DATABASE IF EXISTS "{run_db}" WITH (FORCE)')
        if redis:
            await _drop_redis_keys(prefix)


async def _drop_redis_keys(prefix: str) -> None:
    client = redis_client.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
