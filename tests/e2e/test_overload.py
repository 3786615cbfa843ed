"""Calls that end however their set-up goes wrong: nothing may stay behind, on the server
or at the callee. Races that overload makes common are driven here one call at a time."""

from __future__ import annotations

from pathlib import Path

from e2e.server import (
    CARRIER_HOST,
    DOMAIN,
    NO_VOICEMAIL,
    USERS,
    NuageProcess,
    acme_plan,
    running_nuage,
)
from peers.ports import free_port
from peers.sipp import SippServer, account_row, run_sipp

COMPANY_NUMBER = "+3225550100"  # routed to 1001 by acme_plan
# The carrier is recognised by its address: no digest, so no credentials in the row.
CARRIER_ROW = [["carrier", "", DOMAIN, ""]]


async def _register_1001(nuage: NuageProcess, port: int, workdir: Path) -> None:
    result = await run_sipp(
        "register_auth.xml",
        nuage.sip_target,
        workdir=workdir,
        name="register-1001",
        local_port=port,
        inject=[account_row("1001", USERS["1001"][2], DOMAIN)],
    )
    result.assert_ok(1)


async def _assert_clean(nuage: NuageProcess) -> None:
    # However the call ended, nothing of it stays: calls, relays, ports; and every
    # message the peers sent was understood.
    await nuage.assert_idle()
    counters = await nuage.counters()
    assert counters["sip_rejected"] == counters["sip_dropped"] == 0, counters


async def test_callee_answers_while_the_cancel_crosses(tmp_path: Path) -> None:
    """The callee's 200 crosses our CANCEL and is sent once: we must ACK it and hang up
    at once, not leave the callee in a call nobody is in."""
    async with running_nuage(tmp_path / "nuage", acme_plan(5999), ring_timeout=10) as nuage:
        port = free_port()
        await _register_1001(nuage, port, tmp_path)
        async with SippServer(
            "uas_answer_crossing_cancel.xml", workdir=tmp_path, local_port=port, calls=1
        ) as callee:
            caller = await run_sipp(
                "uac_cancel.xml",
                nuage.sip_target,
                workdir=tmp_path,
                service=COMPANY_NUMBER,
                hold_ms=300,
                inject=CARRIER_ROW,
                extra_args=["-i", CARRIER_HOST],
            )
            caller.assert_ok(1)
            (await callee.wait(15)).assert_ok(1)
        await _assert_clean(nuage)


async def test_silent_callee_answers_after_the_ring_timeout(tmp_path: Path) -> None:
    """No provisional, so no CANCEL can go: the call ends on the ring timeout, and the
    callee's late 200 (sent once) is acknowledged and hung up."""
    plan = acme_plan(5999, extra=NO_VOICEMAIL)
    async with running_nuage(tmp_path / "nuage", plan, ring_timeout=2) as nuage:
        port = free_port()
        await _register_1001(nuage, port, tmp_path)
        async with SippServer(
            "uas_answer_late_silent.xml",
            workdir=tmp_path,
            local_port=port,
            calls=1,
            hold_ms=4000,
        ) as callee:
            caller = await run_sipp(
                "uac_expect_status.xml",
                nuage.sip_target,
                workdir=tmp_path,
                service=COMPANY_NUMBER,
                keys={"status": "480"},
                inject=CARRIER_ROW,
                extra_args=["-i", CARRIER_HOST],
            )
            caller.assert_ok(1)
            await nuage.assert_idle()
            (await callee.wait(15)).assert_ok(1)
        await _assert_clean(nuage)
