"""HTTPS on the HTTP port (`[server] tls_cert` and `tls_key`): a server in this process
with a certificate made for 127.0.0.1, which the clients take as their only trust root.
The app's endpoints, the REST API, the event stream and SIP over WebSocket become https
and wss; plain HTTP is no longer served."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from e2e.server import DOMAIN, NO_VOICEMAIL, USERS, acme_plan
from e2e.test_call_control import ids, in_process_server
from e2e.test_transfer import ALICE_TONE, _phone
from nuage.certificates import self_signed
from nuage.server import NuageServer
from peers.websocket_phone import WebSocketPhone

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def https_nuage(tmp_path: Path) -> AsyncIterator[tuple[NuageServer, ssl.SSLContext]]:
    """The server, and a client context that trusts its certificate and nothing else."""
    cert, key = self_signed(tmp_path, ["127.0.0.1"])
    plan = acme_plan(5999, extra=NO_VOICEMAIL)
    async with in_process_server(tmp_path, plan, tls_cert=str(cert), tls_key=str(key)) as server:
        yield server, ssl.create_default_context(cafile=cert)


def origin(server: NuageServer, scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{server.config.server.http_port}"


async def test_the_api_and_the_event_stream_are_served_over_https(tmp_path: Path) -> None:
    async with https_nuage(tmp_path) as (server, tls):
        async with httpx.AsyncClient(base_url=origin(server, "https"), verify=tls) as http:
            health = await http.get("/healthz")
            assert health.status_code == 200, health.text
            login = await http.post(
                "/api/v1/auth/login", json={"email": USERS["1001"][1], "password": "app-1001"}
            )
            assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        url = f"{origin(server, 'wss')}/api/v1/events?token={token}"
        async with connect(url, ssl=tls) as events:
            assert json.loads(await events.recv())["type"] == "connected"
        # The port speaks TLS only: a plain request gets no HTTP answer.
        async with httpx.AsyncClient(base_url=origin(server, "http")) as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get("/healthz")


async def test_a_browser_registers_over_wss_and_is_called_through_it(tmp_path: Path) -> None:
    """Lucas's browser registers over a secure WebSocket; Élodie's desk phone calls him:
    the INVITE comes over that connection with the server's Via saying WSS (RFC 7118)."""
    async with https_nuage(tmp_path) as (server, tls):
        sip_url = f"{origin(server, 'wss')}/sip"
        target = f"127.0.0.1:{server.config.server.sip_port}"
        bob = WebSocketPhone(sip_url, DOMAIN, "1002", USERS["1002"][2], tls=tls)
        alice = _phone(tmp_path, target, "1001", ALICE_TONE)
        async with bob, alice:
            registered = await bob.register()
            assert registered.status == 200, registered
            assert server.location is not None
            company, user = ids(server, "1002")
            [binding] = server.location.bindings(company, user, datetime.now(UTC))
            assert (binding.contact, binding.peer.transport) == (bob.contact, "wss")
            await alice.wait_event("REGISTER_OK", timeout=10)
            await alice.dial(f"sip:1002@{DOMAIN}")
            invite = await bob.request("INVITE")
            via = invite.top_via
            assert (via.transport, via.host, via.port) == (
                "WSS",
                "127.0.0.1",
                server.config.server.http_port,
            )
            # The URI parameter says ws, secure or not (RFC 7118 section 7).
            [contact] = invite.contacts
            assert contact.uri.params.get("transport") == "ws", contact
            await bob.respond(invite, 486, to_tag="b1")
            assert (await bob.request("ACK")).call_id == invite.call_id
            closed = await alice.wait_event("CALL_CLOSED", timeout=10)
            assert "486" in closed.param, closed
