"""TrunkRegistrar in-process against a sipp registrar at 127.0.0.2: registration, the
un-REGISTER when the trunk goes or the server stops, failures and their back-off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from e2e.server import CARRIER_HOST, acme_plan
from nuage.pbx.provision import apply_plan
from nuage.pbx.trunk_registration import (
    RegistrationState,
    TrunkRegistrar,
    TrunkRegistrationStatus,
    retry_delay,
)
from nuage.sip.endpoint import ServerTransactionHandle, SipEndpoint
from nuage.sip.transaction import TimerConfig
from nuage.store.database import Database
from peers.ports import free_port
from peers.sipp import SippServer

pytestmark = [pytest.mark.db, pytest.mark.peers]

USER, PASSWORD, REALM = "acme-trunk", "trunk-secret", "carrier.example"


async def _provision(db: Database, tmp_path: Path, carrier_port: int, options: str) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(acme_plan(carrier_port, trunk_options=options))
    await apply_plan(db, path)


def _registering(password: str = PASSWORD) -> str:
    return f'username = "{USER}"\npassword = "{password}"\nregister = true\n'


@pytest.fixture
async def endpoint() -> AsyncIterator[SipEndpoint]:
    async def on_request(tx: ServerTransactionHandle) -> None:
        tx.respond(405)

    # Short timers: an unanswered REGISTER then times out in 64*T1 = 0.64 s.
    sip = SipEndpoint(on_request, timers=TimerConfig(t1=0.01, t2=0.04, t4=0.05))
    await sip.listen_udp("127.0.0.1", free_port())
    try:
        yield sip
    finally:
        await sip.close()


def _carrier(scenario: str, tmp_path: Path, *, expires: int = 600) -> SippServer:
    """A sipp registrar for one binding; registrar_uas ignores the expiry column."""
    return SippServer(
        scenario,
        workdir=tmp_path,
        local_port=free_port(),
        calls=1,
        timeout=20,
        inject=[[USER, PASSWORD, REALM, str(expires)]],
        extra_args=["-i", CARRIER_HOST],
    )


async def _until(
    registrar: TrunkRegistrar,
    condition: Callable[[list[TrunkRegistrationStatus]], bool],
    within: float = 5.0,
) -> list[TrunkRegistrationStatus]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition(status := registrar.status()):
        assert loop.time() < deadline, f"status never matched: {status}"
        await asyncio.sleep(0.05)
    return status


def _registered(status: list[TrunkRegistrationStatus]) -> bool:
    return len(status) == 1 and status[0].state is RegistrationState.REGISTERED


def test_retry_delays_grow_then_stay_at_the_last() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 7, 8, 50)] == [5, 10, 20, 300, 300, 300]


async def test_follows_the_trunks_table(
    database: Database, endpoint: SipEndpoint, tmp_path: Path
) -> None:
    async with _carrier("registrar_trunk.xml", tmp_path) as carrier:
        port = carrier.port
        await _provision(database, tmp_path, port, f'username = "{USER}"\n')
        registrar = TrunkRegistrar(database, endpoint, poll_interval=0.1)
        await registrar.start()
        try:
            assert registrar.status() == []
            await _provision(database, tmp_path, port, _registering())
            status = await _until(registrar, _registered)
            (trunk,) = status
            assert (trunk.trunk_name, trunk.aor) == ("carrier", f"sip:{USER}@{CARRIER_HOST}")
            assert trunk.registered_until is not None and trunk.next_attempt is not None
            now = datetime.now(UTC)
            # The carrier granted 600 s: the refresh comes at half of it.
            assert abs(trunk.registered_until - (now + timedelta(seconds=600))).total_seconds() < 5
            assert abs(trunk.next_attempt - (now + timedelta(seconds=300))).total_seconds() < 5
            # The trunk no longer registers: the binding is removed at the carrier.
            await _provision(database, tmp_path, port, f'username = "{USER}"\n')
            await _until(registrar, lambda status: status == [])
            result = await carrier.wait(10)
        finally:
            await registrar.stop()
    result.assert_ok(1)
    assert result.messages is not None
    assert "Expires: 0" in result.messages.read_text()


async def test_stop_unregisters(database: Database, endpoint: SipEndpoint, tmp_path: Path) -> None:
    async with _carrier("registrar_trunk.xml", tmp_path, expires=40) as carrier:
        await _provision(database, tmp_path, carrier.port, _registering())
        registrar = TrunkRegistrar(database, endpoint)
        await registrar.start()
        try:
            (trunk,) = await _until(registrar, _registered)
            assert trunk.next_attempt is not None
            # Half of 40 s is below the 30 s floor.
            delay = (trunk.next_attempt - datetime.now(UTC)).total_seconds()
            assert 25 < delay <= 30
        finally:
            await registrar.stop()
        assert registrar.status() == []
        (await carrier.wait(10)).assert_ok(1)


async def test_wrong_password_fails_and_waits(
    database: Database, endpoint: SipEndpoint, tmp_path: Path
) -> None:
    async with _carrier("registrar_uas.xml", tmp_path) as carrier:
        await _provision(database, tmp_path, carrier.port, _registering("not-the-password"))
        registrar = TrunkRegistrar(database, endpoint, retry_delays=[60])
        await registrar.start()
        try:
            (trunk,) = await _until(registrar, lambda s: s[0].state is RegistrationState.FAILED)
            (await carrier.wait(10)).assert_ok(1)
        finally:
            await registrar.stop()
    assert trunk.reason == "403 Forbidden" and trunk.failures == 1
    assert trunk.next_attempt is not None and trunk.registered_until is None
    delay = (trunk.next_attempt - datetime.now(UTC)).total_seconds()
    assert 55 < delay <= 60


async def test_silent_carrier_is_retried_with_backoff(
    database: Database, endpoint: SipEndpoint, tmp_path: Path
) -> None:
    await _provision(database, tmp_path, free_port(), _registering())
    registrar = TrunkRegistrar(database, endpoint, retry_delays=[0.1, 0.2, 30])
    await registrar.start()
    try:
        (trunk,) = await _until(registrar, lambda s: s[0].failures >= 3, within=10)
    finally:
        await registrar.stop()
    assert trunk.state is RegistrationState.FAILED
    assert trunk.reason.split()[0] in ("408", "503"), trunk.reason
    assert trunk.next_attempt is not None
    assert 25 < (trunk.next_attempt - datetime.now(UTC)).total_seconds() <= 30
