"""`nuage demo` (what `make demo` runs): the demo company answers SIP and the API."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import httpx
import pytest

from e2e.server import NUAGE
from nuage.certificates import CERT_FILE
from nuage.cli import DEMO_RTP_PORTS
from peers.ports import free_port


def port_outside_the_demos_rtp() -> int:
    """A free port the demo does not take for RTP (it refuses a SIP port among them)."""
    low, high = DEMO_RTP_PORTS
    while low <= (port := free_port()) <= high:
        pass
    return port


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_the_demo_serves_its_company(tmp_path: Path, tls: bool) -> None:
    """With --tls, over HTTPS with the certificate it made and kept in its data dir."""
    sip_port, http_port = port_outside_the_demos_rtp(), port_outside_the_demos_rtp()
    output = tmp_path / "demo.log"
    data_dir = tmp_path / "data"
    with output.open("wb") as log:
        demo = await asyncio.create_subprocess_exec(
            str(NUAGE),
            "demo",
            "--sip-port",
            str(sip_port),
            "--http-port",
            str(http_port),
            "--data-dir",
            str(data_dir),
            *(["--tls"] if tls else []),
            stdout=log,
            stderr=log,
        )
    web = f"{'https' if tls else 'http'}://127.0.0.1:{http_port}"
    try:
        for _ in range(150):
            # The demo makes its certificate before it serves: until then, no trust root.
            with contextlib.suppress(httpx.HTTPError, ssl.SSLError, FileNotFoundError):
                verify = ssl.create_default_context(cafile=data_dir / CERT_FILE) if tls else True
                async with httpx.AsyncClient(base_url=web, verify=verify) as http:
                    if (await http.get("/healthz")).status_code == 200:
                        break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(output.read_text())
        async with httpx.AsyncClient(base_url=web, verify=verify) as http:
            login = await http.post(
                "/api/v1/auth/login", json={"email": "elodie@demo.nuage", "password": "demo-1001"}
            )
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            people = (await http.get("/api/v1/directory", headers=headers)).json()
            assert len(people) == 6
        printed = output.read_text()
        assert "elodie@demo.nuage / demo-1001" in printed
        assert f"127.0.0.1:{sip_port}" in printed
        assert f"web app      {web}/\n" in printed
    finally:
        demo.terminate()
        await asyncio.wait_for(demo.wait(), 15)
