"""Browsers (the web app's softphone: SIP over WebSocket, aiortc for their media) in
transfers with baresip desk phones, through the call-control service the app uses: a
browser's relay side goes back to plain RTP when a phone takes its place, and a browser
target gets a WebRTC side of its own. (An attended transfer that moves a phone to a
browser's call, and conferences with browsers, are tested with Chromium in
tests/web/test_in_call.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.server import DOMAIN
from e2e.test_call_control import ids
from e2e.test_sip_websocket import browser, nuage, until
from e2e.test_transfer import ALICE_TONE, BOB_TONE, CAROL_TONE, TONES, _phone
from nuage.pbx.control import CallControl
from nuage.pbx.dialing import API_CALL_ID_HEADER
from nuage.server import NuageServer
from nuage.sip.message import Request, Response
from peers.baresip import BaresipPhone
from peers.hearing import phone_hears, tone
from peers.webrtc import Browser, loopback_only
from peers.websocket_phone import WebSocketPhone

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def loopback_media(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NuageServer]:
    async with nuage(tmp_path) as running:
        yield running


@dataclass
class BrowserCall:
    """One call of a browser: its peer connection and the dialog's first message."""

    media: Browser
    call_id: str  # the call's id in the REST API

    async def hears(self, tone: float) -> None:
        await until(lambda: self.media.tone(TONES) == tone, within=8)


async def place(ws: WebSocketPhone, extension: str, tone: float) -> BrowserCall:
    """The browser calls ``extension``; answered, acknowledged, media set up."""
    media = Browser(tone)
    answer: Response = await ws.invite(f"sip:{extension}@{DOMAIN}", await media.offer())
    assert answer.status == 200, answer
    await ws.ack(answer)
    await media.accept(answer.body.decode())
    # Placed by the browser: the call is named by its own INVITE's Call-ID.
    return BrowserCall(media, answer.call_id)


async def take(ws: WebSocketPhone, tone: float) -> BrowserCall:
    """The browser answers the call ringing it."""
    invite: Request = await ws.request("INVITE")
    media = Browser(tone)
    answer = await media.answer(invite.body.decode())
    await ws.respond(
        invite, 200, to_tag="b1", headers=[("Contact", f"<{ws.contact}>")], body=answer
    )
    await ws.request("ACK")
    call_id = invite.headers.get(API_CALL_ID_HEADER)
    assert call_id, "an INVITE to the web app names its call in the API"
    return BrowserCall(media, call_id)


async def hung_up(ws: WebSocketPhone) -> None:
    bye = await ws.request("BYE")
    await ws.respond(bye, 200)


def control_of(server: NuageServer) -> CallControl:
    assert server.control is not None
    return server.control


@contextlib.asynccontextmanager
async def lucas_and_two_phones(
    server: NuageServer, tmp_path: Path
) -> AsyncIterator[tuple[WebSocketPhone, BaresipPhone, BaresipPhone]]:
    """Lucas's browser (1002) and the desk phones of Élodie (1001) and Camille (1003),
    all registered."""
    target = f"127.0.0.1:{server.config.server.sip_port}"
    alice = _phone(tmp_path, target, "1001", ALICE_TONE)
    carol = _phone(tmp_path, target, "1003", CAROL_TONE)
    async with browser(server, "1002") as ws, alice, carol:
        assert (await ws.register()).status == 200
        await alice.wait_event("REGISTER_OK", timeout=10)
        await carol.wait_event("REGISTER_OK", timeout=10)
        yield ws, alice, carol


async def test_a_browser_blind_transfers_its_caller_to_a_phone(
    server: NuageServer, tmp_path: Path
) -> None:
    """Lucas, in the web app, called Élodie's phone; he transfers her to Camille's phone:
    his relay side, WebRTC until then, carries Camille's plain RTP."""
    control = control_of(server)
    company, lucas = ids(server, "1002")
    _, camille = ids(server, "1003")
    async with lucas_and_two_phones(server, tmp_path) as (ws, alice, carol):
        call = await place(ws, "1001", BOB_TONE)
        try:
            await call.hears(ALICE_TONE)
            await control.transfer(company, lucas, call.call_id, "1003")
            await carol.wait_event("CALL_ESTABLISHED", timeout=10)
            await hung_up(ws)
            await phone_hears(alice, tone(CAROL_TONE), "Camille after the transfer")
            await phone_hears(carol, tone(ALICE_TONE), "Élodie after the transfer")
            [transferred] = control.calls(company, camille)
            assert transferred.other.number == "1001"
            await control.hang_up(company, camille, transferred.id)
            await alice.wait_event("CALL_CLOSED", timeout=10)
            await carol.wait_event("CALL_CLOSED", timeout=10)
        finally:
            await call.media.close()


async def test_a_phone_blind_transfers_to_a_browser(server: NuageServer, tmp_path: Path) -> None:
    """Camille (phone) transfers Élodie (phone) to Lucas in the web app: he gets a WebRTC
    offer naming the call, answers, and they hear each other."""
    control = control_of(server)
    company, camille = ids(server, "1003")
    async with lucas_and_two_phones(server, tmp_path) as (ws, alice, carol):
        await alice.dial(f"sip:1003@{DOMAIN}")
        await carol.wait_event("CALL_ESTABLISHED", timeout=10)
        await phone_hears(alice, tone(CAROL_TONE), "Camille before the transfer")
        [call] = control.calls(company, camille)
        await control.transfer(company, camille, call.id, "1002")
        lucas_call = await take(ws, BOB_TONE)
        try:
            assert lucas_call.call_id == call.id
            await carol.wait_event("CALL_CLOSED", timeout=10)
            await lucas_call.hears(ALICE_TONE)
            await phone_hears(alice, tone(BOB_TONE), "Lucas's browser")
            await alice.hangup()
            await hung_up(ws)
            await alice.wait_event("CALL_CLOSED", timeout=10)
        finally:
            await lucas_call.media.close()


async def test_a_browser_attended_transfers_two_phones(server: NuageServer, tmp_path: Path) -> None:
    """Lucas (web app) calls Élodie, then Camille, and joins them: Camille's phone moves
    to the first call's ports, where Lucas's WebRTC side was; Lucas leaves both."""
    control = control_of(server)
    company, lucas = ids(server, "1002")
    async with lucas_and_two_phones(server, tmp_path) as (ws, alice, carol):
        first = await place(ws, "1001", BOB_TONE)
        second: BrowserCall | None = None
        try:
            await first.hears(ALICE_TONE)
            second = await place(ws, "1003", BOB_TONE)
            await second.hears(CAROL_TONE)
            # Camille's phone names each stream's file by the second it started: her
            # stream after the move must not overwrite the first one's.
            await asyncio.sleep(1.1)
            # The action returns once Lucas's browser acknowledged the end of both calls.
            await asyncio.gather(
                control.attended_transfer(company, lucas, first.call_id, second.call_id),
                hung_up(ws),
                hung_up(ws),
            )
            assert control.calls(company, lucas) == []
            await phone_hears(alice, tone(CAROL_TONE), "Camille after the transfer")
            await phone_hears(carol, tone(ALICE_TONE), "Élodie after the transfer")
            await alice.hangup()
            await alice.wait_event("CALL_CLOSED", timeout=10)
            await carol.wait_event("CALL_CLOSED", timeout=10)
        finally:
            await first.media.close()
            if second is not None:
                await second.media.close()


async def test_a_browser_attended_transfers_two_browsers(server: NuageServer) -> None:
    """Lucas (web app) calls Élodie's and Camille's browsers, then joins them: neither
    browser can move to other ports without a new DTLS association, so Camille's relay
    side moves to the first call with her, ports and all; nobody is re-INVITEd."""
    control = control_of(server)
    company, lucas = ids(server, "1002")
    _, elodie = ids(server, "1001")
    async with (
        browser(server, "1001") as ws_e,
        browser(server, "1002") as ws_l,
        browser(server, "1003") as ws_c,
    ):
        for ws in (ws_e, ws_l, ws_c):
            assert (await ws.register()).status == 200
        calls: list[BrowserCall] = []
        try:
            calls.extend(await place_and_take(ws_l, ws_e, "1001", BOB_TONE, ALICE_TONE))
            calls.extend(await place_and_take(ws_l, ws_c, "1003", BOB_TONE, CAROL_TONE))
            first, elodies, second, camilles = calls
            await asyncio.gather(first.hears(ALICE_TONE), second.hears(CAROL_TONE))
            await asyncio.gather(
                control.attended_transfer(company, lucas, first.call_id, second.call_id),
                hung_up(ws_l),
                hung_up(ws_l),
            )
            assert control.calls(company, lucas) == []
            # Camille's app learns the call it is now in (RFC 3311 UPDATE, no SDP).
            update = await ws_c.request("UPDATE")
            assert update.headers.get(API_CALL_ID_HEADER) == first.call_id
            assert not update.body
            await ws_c.respond(update, 200)
            await asyncio.gather(elodies.hears(CAROL_TONE), camilles.hears(ALICE_TONE))
            [joined] = control.calls(company, elodie)
            assert joined.id == first.call_id and joined.other.number == "1003"
            await asyncio.gather(
                control.hang_up(company, elodie, joined.id), hung_up(ws_e), hung_up(ws_c)
            )
            await until(lambda: server.media is not None and server.media.active_sessions == 0)
        finally:
            for call in calls:
                await call.media.close()


async def place_and_take(
    caller: WebSocketPhone, callee: WebSocketPhone, extension: str, tone: float, their: float
) -> tuple[BrowserCall, BrowserCall]:
    """A browser calls another's ``extension``: the caller's call and the callee's."""
    placed, taken = await asyncio.gather(place(caller, extension, tone), take(callee, their))
    return placed, taken
