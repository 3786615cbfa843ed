"""SIP over WebSocket authenticated with the web app's access token (RFC 8898): the
browser has no SIP password, so JsSIP sends ``Authorization: Bearer <access token>``.
A browser-like user agent over a real WebSocket against a server in this process."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from api.test_events import EMAILS, PASSWORDS
from e2e.server import DOMAIN, NO_VOICEMAIL, USERS, acme_plan
from e2e.test_call_control import in_process_server
from e2e.test_sip_websocket import bindings_of, sip_url
from nuage.server import NuageServer
from nuage.sip.message import Response
from nuage.sip.parser import parse_message
from nuage.store.models import AppSession
from peers.websocket_phone import WebSocketPhone

# Tokens and their expiry are rows: also run against PostgreSQL (`make pg-test`).
pytestmark = [pytest.mark.timeout(60), pytest.mark.db]

# An offer the server can route (the callee has no device: the call fails after auth).
OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
)


@contextlib.asynccontextmanager
async def nuage(tmp_path: Path) -> AsyncIterator[NuageServer]:
    async with in_process_server(tmp_path, acme_plan(5999, extra=NO_VOICEMAIL)) as server:
        yield server


@dataclass
class Login:
    access: str
    refresh: str


def http(server: NuageServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.config.server.http_port}")


async def log_in(server: NuageServer, extension: str) -> Login:
    async with http(server) as client:
        response = await client.post(
            "/api/v1/auth/login",
            json={"email": EMAILS[extension], "password": PASSWORDS[extension]},
        )
    assert response.status_code == 200, response.text
    tokens = response.json()
    return Login(tokens["access_token"], tokens["refresh_token"])


def app(server: NuageServer, extension: str, token: str) -> WebSocketPhone:
    """The web app of the user at ``extension`` over /sip, with the access token ``token``."""
    return WebSocketPhone(sip_url(server), DOMAIN, extension, bearer=token)


def challenges(response: Response) -> list[str]:
    return response.headers.values("WWW-Authenticate")


def assert_token_challenge(response: Response) -> None:
    """401 with the usual Digest challenge and the Bearer one saying the token is bad
    (RFC 8898 section 4)."""
    assert response.status == 401, response
    offered = challenges(response)
    assert offered[0].startswith(f'Digest realm="{DOMAIN}"'), offered
    assert offered[-1] == f'Bearer realm="{DOMAIN}", error="invalid_token"', offered


async def test_the_app_registers_and_calls_with_its_access_token(tmp_path: Path) -> None:
    async with nuage(tmp_path) as server:
        login = await log_in(server, "1002")
        async with app(server, "1002", login.access) as lucas:
            ok = await lucas.register()
            # No challenge first: the token is on the first REGISTER.
            assert ok.status == 200, ok
            assert [str(contact.uri) for contact in ok.contacts] == [lucas.contact]
            assert bindings_of(server, "1002") == [lucas.contact]

            # A call from the app gets past authentication (Camille has no device and no
            # voicemail box: 480).
            refused = await lucas.invite(f"sip:1003@{DOMAIN}", OFFER)
            assert refused.status == 480, refused

            # The app refreshes its tokens and registers again with the new access token;
            # the old one no longer works.
            async with http(server) as client:
                response = await client.post(
                    "/api/v1/auth/refresh", json={"refresh_token": login.refresh}
                )
            assert response.status_code == 200, response.text
            old, lucas.bearer = lucas.bearer, response.json()["access_token"]
            assert (await lucas.register()).status == 200
            lucas.bearer = old
            assert_token_challenge(await lucas.register())
            # Still registered with the binding the new token made.
            assert bindings_of(server, "1002") == [lucas.contact]


async def test_an_expired_or_logged_out_token_is_challenged(tmp_path: Path) -> None:
    async with nuage(tmp_path) as server:
        expired = await log_in(server, "1002")
        assert server.db is not None
        async with server.db.transaction() as session:
            await session.execute(
                update(AppSession)
                .where(AppSession.id == expired.access.partition(".")[0])
                .values(access_expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        async with app(server, "1002", expired.access) as lucas:
            assert_token_challenge(await lucas.register())
            assert_token_challenge(await lucas.invite(f"sip:1003@{DOMAIN}", OFFER))

        logged_out = await log_in(server, "1002")
        async with http(server) as client:
            response = await client.post(
                "/api/v1/auth/logout", headers={"Authorization": f"Bearer {logged_out.access}"}
            )
            assert response.status_code == 204
        async with app(server, "1002", logged_out.access) as lucas:
            assert_token_challenge(await lucas.register())

        # Not a token at all.
        async with app(server, "1002", "not-a-token") as lucas:
            assert_token_challenge(await lucas.register())
        assert bindings_of(server, "1002") == []


async def test_a_token_is_good_for_its_own_extension_only(tmp_path: Path) -> None:
    async with nuage(tmp_path) as server:
        elodie = await log_in(server, "1001")
        # Élodie's token in requests from Lucas's extension.
        async with app(server, "1002", elodie.access) as intruder:
            refused = await intruder.register()
            assert refused.status == 403, refused
            refused = await intruder.invite(f"sip:1003@{DOMAIN}", OFFER)
            assert refused.status == 403, refused
        assert bindings_of(server, "1002") == []
        assert bindings_of(server, "1001") == []


async def test_digest_still_works_over_websocket_and_is_offered_beside_bearer(
    tmp_path: Path,
) -> None:
    async with nuage(tmp_path) as server:
        password = USERS["1002"][2]
        async with WebSocketPhone(sip_url(server), DOMAIN, "1002", password) as lucas:
            ok = await lucas.register()
            assert ok.status == 200, ok
            assert lucas.challenge is not None
            offered = challenges(lucas.challenge)
            # Digest first (a client answers the first scheme it supports), then Bearer.
            assert offered[0].startswith("Digest "), offered
            assert offered[-1] == f'Bearer realm="{DOMAIN}"', offered
            assert bindings_of(server, "1002") == [lucas.contact]


async def test_a_token_over_udp_is_refused(tmp_path: Path) -> None:
    """A desk phone never has a token: over UDP a Bearer token is refused, and the
    challenge offers Digest only."""
    async with nuage(tmp_path) as server:
        login = await log_in(server, "1002")
        sip_port = server.config.server.sip_port
        refused = await _udp_register(sip_port, f"Authorization: Bearer {login.access}")
        assert refused.status == 403, refused
        challenged = await _udp_register(sip_port)
        assert challenged.status == 401, challenged
        assert all(value.startswith("Digest ") for value in challenges(challenged))
        assert bindings_of(server, "1002") == []


async def _udp_register(sip_port: int, *headers: str) -> Response:
    """A REGISTER of Lucas's from a UDP socket of ours, and the server's answer."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        port = sock.getsockname()[1]
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:1002@{DOMAIN}>;tag={secrets.token_hex(4)}",
            f"To: <sip:1002@{DOMAIN}>",
            f"Call-ID: {secrets.token_hex(8)}",
            "CSeq: 1 REGISTER",
            f"Contact: <sip:1002@127.0.0.1:{port}>",
            "Expires: 600",
            *headers,
            "Content-Length: 0",
        ]
        await loop.sock_sendto(
            sock, ("\r\n".join(lines) + "\r\n\r\n").encode(), ("127.0.0.1", sip_port)
        )
        while True:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
            message = parse_message(data, whole=True)
            if isinstance(message, Response) and message.status >= 200:
                return message
