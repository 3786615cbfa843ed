"""Calls through the server, with sipp playing every phone and the carrier."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

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


def _account(extension: str) -> list[list[str]]:
    return [account_row(extension, USERS[extension][2], DOMAIN)]


async def _register(nuage: NuageProcess, extension: str, port: int, workdir: Path) -> None:
    result = await run_sipp(
        "register_auth.xml",
        nuage.sip_target,
        workdir=workdir,
        name=f"register-{extension}",
        local_port=port,
        inject=_account(extension),
    )
    result.assert_ok(1)


async def _call(
    nuage: NuageProcess, caller: str, dialled: str, workdir: Path, *, status: int | None = None
) -> None:
    if status is None:
        result = await run_sipp(
            "uac_call_hangup.xml",
            nuage.sip_target,
            workdir=workdir,
            service=dialled,
            hold_ms=500,
            inject=_account(caller),
        )
    else:
        result = await run_sipp(
            "uac_expect_status.xml",
            nuage.sip_target,
            workdir=workdir,
            service=dialled,
            keys={"status": str(status)},
            inject=_account(caller),
        )
    result.assert_ok(1)


async def _records(nuage: NuageProcess) -> list[str]:
    output = await nuage.cli("calls", "--company", DOMAIN)
    return [line for line in output.splitlines() if line.strip()]


@pytest.fixture
async def nuage(tmp_path: Path):  # type: ignore[no-untyped-def]
    plan = acme_plan(carrier_port=5999, extra=NO_VOICEMAIL)
    async with running_nuage(tmp_path / "nuage", plan, ring_timeout=4) as n:
        yield n
        # However each call ended, nothing of it may stay behind: calls, relays, ports.
        await n.assert_idle()
        # Every message the phones and the carrier sent was well-formed and understood.
        counters = await n.counters()
        assert counters["sip_rejected"] == counters["sip_dropped"] == 0, counters


async def test_internal_call_answered_and_hung_up_by_caller(
    nuage: NuageProcess, tmp_path: Path
) -> None:
    port = free_port()
    await _register(nuage, "1002", port, tmp_path)
    async with SippServer("uas_answer.xml", workdir=tmp_path, local_port=port, calls=1) as uas:
        await _call(nuage, "1001", "1002", tmp_path)
        (await uas.wait(15)).assert_ok(1)
    records = await _records(nuage)
    assert "internal" in records[0] and "1001 -> 1002" in records[0]
    assert "answered" in records[0]


async def test_internal_call_hung_up_by_callee(nuage: NuageProcess, tmp_path: Path) -> None:
    port = free_port()
    await _register(nuage, "1002", port, tmp_path)
    async with SippServer("uas_hangup.xml", workdir=tmp_path, local_port=port, calls=1) as uas:
        result = await run_sipp(
            "uac_wait_bye.xml",
            nuage.sip_target,
            workdir=tmp_path,
            service="1002",
            inject=_account("1001"),
        )
        result.assert_ok(1)
        (await uas.wait(15)).assert_ok(1)


async def test_cancel_while_ringing(nuage: NuageProcess, tmp_path: Path) -> None:
    port = free_port()
    await _register(nuage, "1002", port, tmp_path)
    async with SippServer(
        "uas_ring_forever.xml", workdir=tmp_path, local_port=port, calls=1
    ) as uas:
        result = await run_sipp(
            "uac_cancel.xml",
            nuage.sip_target,
            workdir=tmp_path,
            service="1002",
            inject=_account("1001"),
        )
        result.assert_ok(1)
        (await uas.wait(15)).assert_ok(1)
    assert "cancelled" in (await _records(nuage))[0]


async def test_busy(nuage: NuageProcess, tmp_path: Path) -> None:
    port = free_port()
    await _register(nuage, "1002", port, tmp_path)
    async with SippServer("uas_busy.xml", workdir=tmp_path, local_port=port, calls=1) as uas:
        await _call(nuage, "1001", "1002", tmp_path, status=486)
        (await uas.wait(15)).assert_ok(1)
    assert "busy" in (await _records(nuage))[0]


async def test_unknown_extension_offline_user_and_no_answer(
    nuage: NuageProcess, tmp_path: Path
) -> None:
    await _call(nuage, "1001", "1999", tmp_path, status=404)
    await _call(nuage, "1001", "1003", tmp_path, status=480)  # 1003 has no device
    port = free_port()
    await _register(nuage, "1002", port, tmp_path)
    async with SippServer("uas_ring_forever.xml", workdir=tmp_path, local_port=port, calls=1):
        await _call(nuage, "1001", "1002", tmp_path, status=480)  # ring_timeout is 4 s
    records = await _records(nuage)
    assert "missed" in records[0]
    assert sum("failed" in line for line in records) == 2


async def test_outbound_call_through_the_trunk(nuage: NuageProcess, tmp_path: Path) -> None:
    async with SippServer(
        "uas_answer.xml",
        workdir=tmp_path,
        local_port=5999,
        calls=1,
        extra_args=["-i", CARRIER_HOST],
    ) as carrier:
        await _call(nuage, "1001", "0475 12 34 56".replace(" ", ""), tmp_path)
        result = await carrier.wait(15)
        result.assert_ok(1)
        assert result.messages is not None
        log = result.messages.read_text()
    assert "INVITE sip:+32475123456@" in log
    assert "+3225550100" in log  # 1001's own number as caller ID
    assert "outbound" in (await _records(nuage))[0]


async def test_outbound_policy_refuses_blocked_and_foreign(
    nuage: NuageProcess, tmp_path: Path
) -> None:
    await _call(nuage, "1001", "+3290123456", tmp_path, status=403)  # premium rate
    await _call(nuage, "1001", "+4930123456", tmp_path, status=403)  # DE not allowed


async def test_inbound_call_from_the_trunk(nuage: NuageProcess, tmp_path: Path) -> None:
    port = free_port()
    await _register(nuage, "1001", port, tmp_path)
    async with SippServer("uas_answer.xml", workdir=tmp_path, local_port=port, calls=1) as uas:
        result = await run_sipp(
            "uac",
            nuage.sip_target,
            workdir=tmp_path,
            service="+3225550100",
            local_port=free_port(),
            extra_args=["-i", CARRIER_HOST],
        )
        result.assert_ok(1)
        (await uas.wait(15)).assert_ok(1)
    assert "inbound" in (await _records(nuage))[0]


async def test_every_device_rings_first_answer_wins_others_cancelled(
    nuage: NuageProcess, tmp_path: Path
) -> None:
    desk, mobile = free_port(), free_port()
    await _register(nuage, "1002", desk, tmp_path / "desk")
    await _register(nuage, "1002", mobile, tmp_path / "mobile")
    ringing = SippServer(
        "uas_ring_forever.xml", workdir=tmp_path / "mobile", local_port=mobile, calls=1
    )
    answering = SippServer("uas_answer.xml", workdir=tmp_path / "desk", local_port=desk, calls=1)
    async with ringing as mobile_phone, answering as desk_phone:
        await _call(nuage, "1001", "1002", tmp_path)
        (await desk_phone.wait(15)).assert_ok(1)
        # The device that lost the race got a CANCEL (its scenario needs it to succeed).
        (await mobile_phone.wait(15)).assert_ok(1)
    assert "answered" in (await _records(nuage))[0]


async def test_early_media_is_forwarded_through_the_relay(
    nuage: NuageProcess, tmp_path: Path
) -> None:
    port = free_port()
    await _register(nuage, "1002", port, tmp_path)
    async with SippServer("uas_early_media.xml", workdir=tmp_path, local_port=port, calls=1) as uas:
        result = await run_sipp(
            "uac_call_hangup.xml",
            nuage.sip_target,
            workdir=tmp_path,
            service="1002",
            hold_ms=200,
            inject=_account("1001"),
        )
        result.assert_ok(1)
        (await uas.wait(15)).assert_ok(1)
    assert result.messages is not None
    log = result.messages.read_text()
    progress = log[log.index("SIP/2.0 183 Session Progress") :]
    progress = progress[: progress.index("SIP/2.0 200 OK")]
    relay_port = int(progress.split("m=audio ")[1].split()[0])
    config = nuage.config_path.read_text()
    low = int(config.split("rtp_port_min = ")[1].split()[0])
    high = int(config.split("rtp_port_max = ")[1].split()[0])
    assert low <= relay_port <= high, progress


async def test_failed_authentications_are_throttled(nuage: NuageProcess, tmp_path: Path) -> None:
    guesses = await run_sipp(
        "register_wrong_password.xml",
        nuage.sip_target,
        workdir=tmp_path / "guesses",
        calls=10,
        inject=[account_row("1002", "guess", DOMAIN)],
    )
    guesses.assert_ok(10)
    # Now even the right password is refused from that address, without a challenge,
    # until the block ends.
    blocked = await run_sipp(
        "register_auth.xml",
        nuage.sip_target,
        workdir=tmp_path / "blocked",
        inject=_account("1002"),
    )
    assert blocked.failed == 1 and blocked.successful == 0, blocked.diagnosis()
    assert blocked.messages is not None
    exchange = blocked.messages.read_text()
    assert "SIP/2.0 403 Too many failed authentications" in exchange
    assert "SIP/2.0 200" not in exchange


async def test_emergency_number_goes_out_as_dialled(nuage: NuageProcess, tmp_path: Path) -> None:
    async with SippServer(
        "uas_answer.xml",
        workdir=tmp_path,
        local_port=5999,
        calls=1,
        extra_args=["-i", CARRIER_HOST],
    ) as carrier:
        await _call(nuage, "1002", "112", tmp_path)
        result = await carrier.wait(15)
        result.assert_ok(1)
        assert result.messages is not None
        assert "INVITE sip:112@" in result.messages.read_text()


async def test_concurrent_external_call_limit(tmp_path: Path) -> None:
    plan = acme_plan(5999).replace("max_external_calls = 10", "max_external_calls = 1")
    async with running_nuage(tmp_path / "nuage", plan) as nuage:
        async with SippServer(
            "uas_answer.xml",
            workdir=tmp_path / "carrier",
            local_port=5999,
            calls=1,
            extra_args=["-i", CARRIER_HOST],
        ) as carrier:
            first = asyncio.create_task(
                run_sipp(
                    "uac_call_hangup.xml",
                    nuage.sip_target,
                    workdir=tmp_path / "first",
                    service="0475123456",
                    hold_ms=4000,
                    inject=_account("1001"),
                )
            )
            await nuage.wait_for_calls(1)
            await _call(nuage, "1002", "0475654321", tmp_path / "second", status=403)
            (await first).assert_ok(1)
            (await carrier.wait(15)).assert_ok(1)
        await nuage.assert_idle()


async def test_late_offer_call(nuage: NuageProcess, tmp_path: Path) -> None:
    """INVITE without SDP: the callee's 200 offers, the caller's ACK answers, through us."""
    port = free_port()
    await _register(nuage, "1002", port, tmp_path)
    callee = SippServer("uas_answer_late_offer.xml", workdir=tmp_path, local_port=port, calls=1)
    async with callee as uas:
        result = await run_sipp(
            "uac_late_offer.xml",
            nuage.sip_target,
            workdir=tmp_path,
            service="1002",
            hold_ms=300,
            inject=_account("1001"),
        )
        result.assert_ok(1)
        (await uas.wait(15)).assert_ok(1)
    assert "answered" in (await _records(nuage))[0]
