"""Registration against a running server, with sipp as the phone."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from e2e.server import DOMAIN, acme_plan, running_nuage
from peers.sipp import account_row, run_sipp


async def test_register_with_digest_and_refuse_wrong_password(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        ok = await run_sipp(
            "register_auth.xml",
            nuage.sip_target,
            workdir=tmp_path / "ok",
            inject=[account_row("1001", "sip-1001", DOMAIN)],
        )
        ok.assert_ok(1)
        wrong = await run_sipp(
            "register_wrong_password.xml",
            nuage.sip_target,
            workdir=tmp_path / "wrong",
            inject=[account_row("1002", "not-the-password", DOMAIN)],
        )
        wrong.assert_ok(1)
        assert wrong.messages is not None
        assert "SIP/2.0 403 Wrong credentials" in wrong.messages.read_text()


def _options(port: int) -> bytes:
    request = (
        f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKopt1;rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{DOMAIN}>;tag=p1\r\n"
        f"To: <sip:{DOMAIN}>\r\n"
        "Call-ID: options-probe\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return request.encode()


async def test_options_answered(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            sock.sendto(_options(nuage.sip_port), ("127.0.0.1", nuage.sip_port))
            data = await asyncio.to_thread(sock.recv, 65536)
        assert data.startswith(b"SIP/2.0 200 OK\r\n")
        assert b"Allow: INVITE, ACK, CANCEL, BYE" in data
