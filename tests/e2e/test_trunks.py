"""Trunks with credentials, through a real `nuage serve`: sipp plays the carrier at
127.0.0.2, registrar for a registering trunk and challenging UAS for outbound calls."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

from e2e.server import (
    CARRIER_HOST,
    DOMAIN,
    USERS,
    NuageProcess,
    acme_plan,
    running_nuage,
)
from peers.ports import free_port
from peers.sipp import SippServer, account_row, run_sipp

TRUNK_USER = "acme-trunk"
TRUNK_PASSWORD = "trunk-secret"
CARRIER_REALM = "carrier.example"
CREDENTIALS = f'username = "{TRUNK_USER}"\npassword = "{TRUNK_PASSWORD}"\n'


def _check_md5_digest(params_text: str, method: str) -> None:
    """RFC 7616 3.4.1 recomputed here, independently of nuage.sip.digest (sipp cannot
    verify a Proxy-Authorization)."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', params_text))

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    assert params["username"] == TRUNK_USER and params["realm"] == CARRIER_REALM
    assert params["qop"] == "auth" and params["opaque"] == "carrier-opaque"
    ha1 = md5(f"{TRUNK_USER}:{CARRIER_REALM}:{TRUNK_PASSWORD}")
    ha2 = md5(f"{method}:{params['uri']}")
    expected = md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
    assert params["response"] == expected


async def test_registering_trunk_registers_and_unregisters_at_shutdown(
    tmp_path: Path,
) -> None:
    port = free_port()
    plan = acme_plan(port, trunk_options=CREDENTIALS + "register = true\n")
    async with (
        SippServer(
            "registrar_trunk.xml",
            workdir=tmp_path,
            local_port=port,
            calls=1,
            inject=[[TRUNK_USER, TRUNK_PASSWORD, CARRIER_REALM, "600"]],
            extra_args=["-i", CARRIER_HOST],
        ) as registrar,
        running_nuage(tmp_path / "nuage", plan) as nuage,
    ):
        await _until_logged(nuage, "trunk carrier registered")
        await nuage.stop()
        # The scenario checks both digests and the un-REGISTER's Expires: 0.
        result = await registrar.wait(10)
    result.assert_ok(1)
    assert result.messages is not None
    log = result.messages.read_text()
    assert f"REGISTER sip:{CARRIER_HOST}:{port} SIP/2.0" in log
    assert f"To: <sip:{TRUNK_USER}@{CARRIER_HOST}>" in log
    assert f"Contact: <sip:{nuage.sip_target}>" in log
    assert "Expires: 3600" in log and "Expires: 0" in log
    assert f'username="{TRUNK_USER}"' in log and f'realm="{CARRIER_REALM}"' in log


async def _until_logged(nuage: NuageProcess, text: str, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while text not in nuage.log_path.read_text(errors="replace"):
        assert loop.time() < deadline, f"never logged {text!r}:\n{nuage.log()}"
        await asyncio.sleep(0.1)


async def test_outbound_call_answers_the_carriers_407(tmp_path: Path) -> None:
    port = free_port()
    plan = acme_plan(port, trunk_options=CREDENTIALS)
    async with running_nuage(tmp_path / "nuage", plan, ring_timeout=4) as nuage:
        async with SippServer(
            "uas_challenge_answer.xml",
            workdir=tmp_path,
            local_port=port,
            calls=1,
            inject=[[CARRIER_REALM]],
            extra_args=["-i", CARRIER_HOST],
        ) as carrier:
            caller = await run_sipp(
                "uac_call_hangup.xml",
                nuage.sip_target,
                workdir=tmp_path,
                service="0475123456",
                hold_ms=500,
                inject=[account_row("1001", USERS["1001"][2], DOMAIN)],
            )
            caller.assert_ok(1)
            result = await carrier.wait(15)
            result.assert_ok(1)
            assert result.messages is not None
            log = result.messages.read_text()
        records = await nuage.cli("calls", "--company", DOMAIN)
    assert "SIP/2.0 407" in log
    authorization = re.search(r"^Proxy-Authorization: Digest (.*)$", log, re.MULTILINE)
    assert authorization is not None, log
    _check_md5_digest(authorization.group(1), "INVITE")
    assert "INVITE sip:+32475123456@" in log
    first = next(line for line in records.splitlines() if line.strip())
    assert "outbound" in first and "answered" in first
