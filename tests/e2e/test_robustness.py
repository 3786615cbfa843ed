"""What a running server survives: malformed floods, restarts, live provisioning."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from e2e.server import DOMAIN, USERS, acme_plan, running_nuage
from e2e.test_calls_sipp import _call, _register
from peers.malformed import flood, malformed_messages
from peers.ports import free_port
from peers.sipp import SippServer, account_row, run_sipp


def _options(call_id: str) -> bytes:
    return (
        f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{call_id};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{DOMAIN}>;tag=p1\r\n"
        f"To: <sip:{DOMAIN}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def _options_answered(port: int, call_id: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sock.sendto(_options(call_id), ("127.0.0.1", port))
        return await asyncio.to_thread(sock.recv, 65536)


async def test_malformed_flood_then_still_serving(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        cases = [payload for _, payload in malformed_messages(seed=7)]
        sent = await flood("127.0.0.1", nuage.sip_port, cases, transport="udp", repeat=20)
        assert sent == 20 * len(cases)
        await flood("127.0.0.1", nuage.sip_port, cases, transport="tcp")
        answer = await _options_answered(nuage.sip_port, "after-flood")
        assert answer.startswith(b"SIP/2.0 200 OK\r\n")
        registered = await run_sipp(
            "register_auth.xml",
            nuage.sip_target,
            workdir=tmp_path,
            inject=[account_row("1001", USERS["1001"][2], DOMAIN)],
        )
        registered.assert_ok(1)
        assert nuage.process is not None and nuage.process.returncode is None
        log = nuage.log()
        assert "Traceback" not in log, log


async def test_malformed_request_gets_400(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        bad_cseq = _options("bad-cseq").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            sock.sendto(bad_cseq, ("127.0.0.1", nuage.sip_port))
            answer = await asyncio.to_thread(sock.recv, 65536)
        assert answer.startswith(b"SIP/2.0 400 ")
        assert b"Call-ID: bad-cseq" in answer


async def test_registrations_survive_a_restart(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        port = free_port()
        await _register(nuage, "1002", port, tmp_path)
        await nuage.stop()
        await nuage.start()
        async with SippServer("uas_answer.xml", workdir=tmp_path, local_port=port, calls=1) as uas:
            await _call(nuage, "1001", "1002", tmp_path)
            (await uas.wait(15)).assert_ok(1)
        await nuage.assert_idle()


async def test_provisioning_applies_to_a_running_server(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        newcomer = """
[[users]]
name = "Nora Claes"
extension = "1004"
email = "nora@acme.example"
password = "app-1004-secret"
sip_password = "sip-1004-secret"
"""
        before = await run_sipp(
            "register_wrong_password.xml",
            nuage.sip_target,
            workdir=tmp_path,
            inject=[account_row("1004", "sip-1004-secret", DOMAIN)],
        )
        before.assert_ok(1)  # unknown user: refused
        report = await nuage.provision(acme_plan(5999, extra=newcomer))
        assert "users: 1 created" in report
        after = await run_sipp(
            "register_auth.xml",
            nuage.sip_target,
            workdir=tmp_path,
            inject=[account_row("1004", "sip-1004-secret", DOMAIN)],
        )
        after.assert_ok(1)
