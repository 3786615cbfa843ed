"""SIP over WebSocket (RFC 7118) at /sip: a browser-like user agent over a real WebSocket
against a server in this process, and a baresip phone calling it over UDP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from e2e.server import DOMAIN, NO_VOICEMAIL, USERS, acme_plan
from e2e.test_call_control import ids, in_process_server
from e2e.test_transfer import ALICE_TONE, BOB_TONE, _phone
from nuage.pbx.location import LocationService
from nuage.server import NuageServer
from nuage.store.models import CallRecord, Registration
from peers import audio
from peers.waiting import until
from peers.webrtc import Browser, loopback_only
from peers.websocket_phone import WebSocketPhone

pytestmark = pytest.mark.timeout(90)


@contextlib.asynccontextmanager
async def nuage(tmp_path: Path) -> AsyncIterator[NuageServer]:
    # No voicemail: a call to a user with no device fails rather than leaving a message.
    async with in_process_server(tmp_path, acme_plan(5999, extra=NO_VOICEMAIL)) as server:
        yield server


def sip_url(server: NuageServer) -> str:
    return f"ws://127.0.0.1:{server.config.server.http_port}/sip"


def browser(server: NuageServer, extension: str) -> WebSocketPhone:
    return WebSocketPhone(sip_url(server), DOMAIN, extension, USERS[extension][2])


def bindings_of(server: NuageServer, extension: str) -> list[str]:
    assert server.location is not None
    company, user = ids(server, extension)
    return [b.contact for b in server.location.bindings(company, user, datetime.now(UTC))]


async def stored_contacts(server: NuageServer, extension: str) -> list[str]:
    assert server.db is not None
    company, user = ids(server, extension)
    async with server.db.session() as session:
        rows = await session.scalars(
            select(Registration).where(
                Registration.company_id == company, Registration.user_id == user
            )
        )
        return [row.contact for row in rows]


async def only_record(server: NuageServer) -> CallRecord:
    assert server.db is not None
    for _ in range(100):
        async with server.db.session() as session:
            records = list(await session.scalars(select(CallRecord)))
        if len(records) == 1 and records[0].outcome is not None:
            return records[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"not one closed call record: {records}")


async def test_a_browser_registers_with_digest_over_websocket(tmp_path: Path) -> None:
    async with nuage(tmp_path) as server:
        async with browser(server, "1002") as bob:
            ok = await bob.register()
            assert bob.challenge is not None and bob.challenge.status == 401
            assert ok.status == 200, ok
            assert [str(contact.uri) for contact in ok.contacts] == [bob.contact]
            assert bindings_of(server, "1002") == [bob.contact]
            assert await stored_contacts(server, "1002") == [bob.contact]
            assert server.location is not None
            company, user = ids(server, "1002")
            [binding] = server.location.bindings(company, user, datetime.now(UTC))
            assert binding.peer.transport == "ws" and binding.peer.connection_id is not None
            # A restarted server loads the bindings back, but not this one: its connection
            # would be gone, and the browser registers again once it has reconnected.
            assert server.db is not None and server.writer is not None
            restarted = LocationService(server.db, server.writer)
            await restarted.load(datetime.now(UTC))
            assert restarted.bindings(company, user, datetime.now(UTC)) == []
        async with browser(server, "1003") as intruder:
            refused = await intruder.register(password="not-the-password")
            assert refused.status == 403, refused
            assert bindings_of(server, "1003") == []


@pytest.fixture
def loopback_media(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


async def test_a_phone_calls_a_browser_registered_over_websocket(
    tmp_path: Path, loopback_media: None
) -> None:
    """Élodie's desk phone calls Lucas, in the web app: the INVITE comes over his
    WebSocket with a WebRTC offer (ICE-lite, DTLS-SRTP); his browser's media stack
    answers; they hear each other through the relay."""
    async with nuage(tmp_path) as server:
        target = f"127.0.0.1:{server.config.server.sip_port}"
        alice = _phone(tmp_path, target, "1001", ALICE_TONE)
        lucas = Browser(BOB_TONE)
        try:
            async with browser(server, "1002") as bob, alice:
                assert (await bob.register()).status == 200
                await alice.wait_event("REGISTER_OK", timeout=10)
                await alice.dial(f"sip:1002@{DOMAIN}")

                invite = await bob.request("INVITE")
                assert str(invite.uri) == bob.contact
                assert invite.top_via.transport == "WS"
                [contact] = invite.contacts
                assert contact.uri.params.get("transport") == "ws", contact
                offer = invite.body.decode()
                assert "UDP/TLS/RTP/SAVPF" in offer and "a=fingerprint:sha-256" in offer
                await bob.respond(invite, 180, to_tag="b1")
                answer = await lucas.answer(offer)
                await bob.respond(
                    invite,
                    200,
                    to_tag="b1",
                    headers=[("Contact", f"<{bob.contact}>")],
                    body=answer,
                )
                ack = await bob.request("ACK")
                assert ack.call_id == invite.call_id
                await alice.wait_event("CALL_ESTABLISHED", timeout=10)
                await asyncio.sleep(3.0)
                heard_by_lucas = lucas.tone((ALICE_TONE, BOB_TONE))
                await alice.hangup()
                bye = await bob.request("BYE")
                assert bye.call_id == invite.call_id
                await bob.respond(bye, 200)
                await alice.wait_event("CALL_CLOSED", timeout=10)
                heard_by_alice = alice.received_audio([ALICE_TONE, BOB_TONE])
        finally:
            await lucas.close()
        # The media went through the server both ways, encrypted on the browser's leg.
        assert heard_by_lucas == ALICE_TONE
        assert audio.share(heard_by_alice, BOB_TONE) > 0.4, audio.describe(heard_by_alice)
        record = await only_record(server)
        assert (record.caller, record.callee, record.outcome) == ("1001", "1002", "answered")


async def test_a_browser_calls_a_phone(tmp_path: Path, loopback_media: None) -> None:
    """Lucas calls Élodie from the web app: his WebRTC offer reaches her desk phone as
    plain RTP SDP; they hear each other; he hangs up."""
    async with nuage(tmp_path) as server:
        target = f"127.0.0.1:{server.config.server.sip_port}"
        alice = _phone(tmp_path, target, "1001", ALICE_TONE)
        lucas = Browser(BOB_TONE)
        try:
            async with browser(server, "1002") as bob, alice:
                assert (await bob.register()).status == 200
                await alice.wait_event("REGISTER_OK", timeout=10)
                offer = await lucas.offer()
                answer = await bob.invite(f"sip:1001@{DOMAIN}", offer)
                assert answer.status == 200, answer
                body = answer.body.decode()
                assert "a=ice-lite" in body and "a=setup:passive" in body
                await bob.ack(answer)
                await lucas.accept(body)
                await alice.wait_event("CALL_ESTABLISHED", timeout=10)
                await asyncio.sleep(3.0)
                heard_by_lucas = lucas.tone((ALICE_TONE, BOB_TONE))
                assert (await bob.bye(answer)).status == 200
                await alice.wait_event("CALL_CLOSED", timeout=10)
                heard_by_alice = alice.received_audio([ALICE_TONE, BOB_TONE])
        finally:
            await lucas.close()
        assert heard_by_lucas == ALICE_TONE
        assert audio.share(heard_by_alice, BOB_TONE) > 0.4, audio.describe(heard_by_alice)
        record = await only_record(server)
        assert (record.caller, record.callee, record.outcome) == ("1002", "1001", "answered")


async def test_a_browser_that_disconnected_is_not_rung(tmp_path: Path) -> None:
    async with nuage(tmp_path) as server:
        target = f"127.0.0.1:{server.config.server.sip_port}"
        alice = _phone(tmp_path, target, "1001", ALICE_TONE)
        async with alice:
            async with browser(server, "1002") as bob:
                assert (await bob.register()).status == 200
                assert bindings_of(server, "1002") == [bob.contact]
            await until(lambda: bindings_of(server, "1002") == [])
            assert server.endpoint is not None
            assert server.endpoint.transport.stats.ws_connections == 0
            for _ in range(100):
                if await stored_contacts(server, "1002") == []:
                    break
                await asyncio.sleep(0.05)
            assert await stored_contacts(server, "1002") == []
            await alice.wait_event("REGISTER_OK", timeout=10)
            sent_before = server.endpoint.transport.stats.send_errors
            await alice.dial(f"sip:1002@{DOMAIN}")
            closed = await alice.wait_event(["CALL_CLOSED", "CALL_ESTABLISHED"], timeout=10)
            assert closed.type == "CALL_CLOSED" and "480" in closed.param, closed
            # Refused without trying: nothing was sent towards the gone connection.
            assert server.endpoint.transport.stats.send_errors == sent_before
        record = await only_record(server)
        assert (record.callee, record.outcome) == ("1002", "failed")


async def test_malformed_messages_and_wrong_subprotocols(tmp_path: Path) -> None:
    async with nuage(tmp_path) as server:
        url = sip_url(server)
        for subprotocols in (["chat"], None):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, subprotocols=subprotocols):  # type: ignore[arg-type]
                    pass
            assert refused.value.response.status_code == 403
        async with browser(server, "1001") as phone:
            options = phone.request_text("OPTIONS", f"sip:{DOMAIN}", [])
            # Garbage, an empty message and a request with a wrong CSeq: the last gets a
            # 400, the others are dropped; the connection keeps serving.
            await phone.send("this is not SIP")
            await phone.send("")
            await phone.send(options.replace(" OPTIONS\r\n", " INVITE\r\n", 1))
            bad = await phone.response()
            assert bad.status == 400
            await phone.send(options.replace("Content-Length: 0", "Content-Length: 5") + "xx")
            assert (await phone.response()).status == 400
            await phone.send(phone.request_text("OPTIONS", f"sip:{DOMAIN}", []).encode())
            assert (await phone.response()).status == 200
            await phone.send("\r\n\r\n")
            await until(lambda: phone.other == ["\r\n"])
            assert phone.open
        assert server.endpoint is not None
        stats = server.endpoint.transport.stats
        assert stats.dropped >= 2 and stats.rejected >= 2


async def test_before_sip_is_ready_the_connection_is_closed_with_1013(tmp_path: Path) -> None:
    async with nuage(tmp_path) as server:
        del server.app.state.sip_endpoint
        async with connect(sip_url(server), subprotocols=["sip"]) as connection:  # type: ignore[list-item]
            await connection.wait_closed()
            assert connection.close_code == 1013
