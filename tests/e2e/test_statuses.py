"""Statuses decide what a call to a user does (F3): a server in this process, baresip
phones for Alice, Bob and Carol, the carrier simulator as the trunk; Bob sets his status
through the REST API, as the app does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from api.test_events import base_url, token_of
from e2e.server import CARRIER_HOST, DOMAIN, acme_plan
from e2e.test_call_control import ids, in_process_server, three_phones
from nuage.carrier import CarrierSimulator
from nuage.pbx.control import CallControlError
from nuage.server import NuageServer
from nuage.store.models import CallRecord
from peers.baresip import BaresipPhone
from test_statuses import STATUSES


@pytest.fixture
async def carrier() -> AsyncIterator[CarrierSimulator]:
    simulator = CarrierSimulator(CARRIER_HOST, 0, answer_delay=0.2, hangup_after=60.0)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.fixture
async def server(tmp_path: Path, carrier: CarrierSimulator) -> AsyncIterator[NuageServer]:
    async with in_process_server(tmp_path, acme_plan(carrier.port, extra=STATUSES)) as nuage:
        yield nuage


async def _refused(phone: BaresipPhone, status: str) -> None:
    """The phone's call ends at once with ``status``, never answered."""
    event = await phone.wait_event(["CALL_CLOSED", "CALL_ESTABLISHED"], timeout=10)
    assert event.type == "CALL_CLOSED" and status in event.param, event


async def _hang_up(caller: BaresipPhone, callee: BaresipPhone | None = None) -> None:
    await caller.hangup()
    await caller.wait_event("CALL_CLOSED", timeout=10)
    if callee is not None:
        await callee.wait_event("CALL_CLOSED", timeout=10)


async def _records(server: NuageServer, count: int) -> list[CallRecord]:
    """The company's ``count`` call records, oldest first, once all are closed (the
    writer commits them in the background)."""
    assert server.db is not None
    for _ in range(100):
        async with server.db.session() as session:
            records = list(await session.scalars(select(CallRecord).order_by(CallRecord.id)))
        if len(records) == count and all(r.outcome is not None for r in records):
            return records
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {count} closed call records: {records}")


async def test_bobs_status_decides_where_calls_to_him_go(
    server: NuageServer,
    carrier: CarrierSimulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nuage.carrier")
    control, engine = server.control, server.service
    assert control is not None and engine is not None
    company, bob_id = ids(server, "1002")
    _, carol_id = ids(server, "1003")
    alice, bob, carol = three_phones(server, tmp_path)
    api = httpx.AsyncClient(base_url=base_url(server))

    async def set_bobs_status(key: str) -> None:
        response = await api.put(
            "/api/v1/me/status", headers={"Authorization": f"Bearer {bob_token}"}, json={"key": key}
        )
        assert response.status_code == 200, response.text
        assert response.json()["key"] == key

    async with api, alice, bob, carol:
        bob_token = await token_of(api, "1002")
        for phone in (alice, bob, carol):
            await phone.wait_event("REGISTER_OK", timeout=10)

        # Do not disturb: busy at once.
        await set_bobs_status("dnd")
        await alice.dial(f"sip:1002@{DOMAIN}")
        await _refused(alice, "486")

        # In a meeting: his voicemail answers (tests/e2e/test_voicemail.py leaves a
        # message); Alice hangs up during the greeting.
        await set_bobs_status("meeting")
        await alice.dial(f"sip:1002@{DOMAIN}")
        await alice.wait_event("CALL_ESTABLISHED", timeout=10)
        await _hang_up(alice)

        # Forwarded to Carol, who sees Alice calling.
        await set_bobs_status("colleague")
        await alice.dial(f"sip:1002@{DOMAIN}")
        answered = await carol.wait_event("CALL_ESTABLISHED", timeout=10)
        await alice.wait_event("CALL_ESTABLISHED", timeout=10)
        assert "1001@" in str(answered.data.get("peeruri")), answered.data
        [call] = control.calls(company, carol_id)
        assert call.other.number == "1001"
        # A transfer to Bob follows his status too.
        await set_bobs_status("dnd")
        with pytest.raises(CallControlError, match="486 Do not disturb"):
            await control.transfer(company, carol_id, call.id, "1002")
        await _hang_up(alice, carol)

        # Forwarded to a mobile: out through the trunk, shown the company's number.
        await set_bobs_status("mobile")
        await alice.dial(f"sip:1002@{DOMAIN}")
        await alice.wait_event("CALL_ESTABLISHED", timeout=10)
        [outside] = engine.calls.live_calls()
        assert (outside.direction, outside.caller.number, outside.callee.number) == (
            "outbound",
            "1001",
            "+32475123456",
        )
        assert engine.calls.external_calls[company] == 1
        assert carrier.active_calls == 1
        await _hang_up(alice)

        # Available again: Bob's phone rings (and answers by itself).
        await set_bobs_status("available")
        await alice.dial(f"sip:1002@{DOMAIN}")
        await bob.wait_event("CALL_ESTABLISHED", timeout=10)
        await alice.wait_event("CALL_ESTABLISHED", timeout=10)
        await _hang_up(alice, bob)
        bob_calls = [e for e in bob.events if e.type == "CALL_ESTABLISHED"]

    assert len(bob_calls) == 1
    assert "carrier: call to +32475123456 from +3225550100" in caplog.text
    records = await _records(server, 5)
    assert [(r.direction, r.caller, r.callee, r.outcome, r.reason) for r in records] == [
        ("internal", "1001", "1002", "busy", "486 Do not disturb"),
        ("internal", "1001", "1002", "voicemail", ""),
        ("internal", "1001", "1003", "answered", "hung up by A"),
        ("outbound", "1001", "+32475123456", "answered", "hung up by A"),
        ("internal", "1001", "1002", "answered", "hung up by A"),
    ]
    # Refused calls are Bob's missed calls (F16).
    assert [r.callee_user_id for r in records[:2]] == [bob_id, bob_id]
