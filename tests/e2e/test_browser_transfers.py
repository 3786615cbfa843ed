"""Browsers (the web app's softphone: SIP over WebSocket, aiortc for their media) in
transfers and conferences with baresip desk phones, through the call-control service
the app uses. A browser's relay side goes back to plain RTP when a phone takes its
place, a browser target gets a WebRTC side of its own, and a browser never moves to
other ports: the phone moves to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from e2e.server import DOMAIN
from e2e.test_call_control import ids
from e2e.test_sip_websocket import browser, nuage, until
from e2e.test_transfer import ALICE_TONE, BOB_TONE, CAROL_TONE, TONES, _phone
from nuage.pbx.control import CallControl
from nuage.pbx.dialing import API_CALL_ID_HEADER
from nuage.server import NuageServer
from nuage.sip.message import Request, Response
from peers import audio
from peers.baresip import BaresipPhone
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


async def take(ws: WebSocketPhone, tone: float, codecs: tuple[str, ...] = ()) -> BrowserCall:
    """The browser answers the call ringing it (with one of ``codecs``)."""
    invite: Request = await ws.request("INVITE")
    media = Browser(tone, codecs=codecs)
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


def phones(server: NuageServer, tmp_path: Path) -> tuple[BaresipPhone, BaresipPhone]:
    target = f"127.0.0.1:{server.config.server.sip_port}"
    return (
        _phone(tmp_path, target, "1001", ALICE_TONE),
        _phone(tmp_path, target, "1003", CAROL_TONE),
    )


def ends_with(phone: BaresipPhone, tone: float, seconds: float = 1.5) -> None:
    """The phone heard ``tone`` over the last seconds of its call (complete after
    CALL_CLOSED)."""
    heard = phone.received_audio(TONES)
    last = heard[-int(seconds * 1000 / audio.FRAME_MS) :]
    assert audio.share(last, tone) > 0.6, audio.describe(heard)


async def test_a_browser_blind_transfers_its_caller_to_a_phone(
    server: NuageServer, tmp_path: Path
) -> None:
    """Lucas, in the web app, called Élodie's phone; he transfers her to Camille's phone:
    his relay side, WebRTC until then, carries Camille's plain RTP."""
    control = control_of(server)
    company, lucas = ids(server, "1002")
    _, camille = ids(server, "1003")
    alice, carol = phones(server, tmp_path)
    async with browser(server, "1002") as ws, alice, carol:
        assert (await ws.register()).status == 200
        await alice.wait_event("REGISTER_OK", timeout=10)
        await carol.wait_event("REGISTER_OK", timeout=10)
        call = await place(ws, "1001", BOB_TONE)
        try:
            await call.hears(ALICE_TONE)
            await control.transfer(company, lucas, call.call_id, "1003")
            await carol.wait_event("CALL_ESTABLISHED", timeout=10)
            await hung_up(ws)
            await asyncio.sleep(2.5)
            [transferred] = control.calls(company, camille)
            assert transferred.other.number == "1001"
            await control.hang_up(company, camille, transferred.id)
            await alice.wait_event("CALL_CLOSED", timeout=10)
            await carol.wait_event("CALL_CLOSED", timeout=10)
        finally:
            await call.media.close()
    ends_with(alice, CAROL_TONE)
    ends_with(carol, ALICE_TONE)


async def test_a_phone_blind_transfers_to_a_browser(server: NuageServer, tmp_path: Path) -> None:
    """Camille (phone) transfers Élodie (phone) to Lucas in the web app: he gets a WebRTC
    offer naming the call, answers, and they hear each other."""
    control = control_of(server)
    company, camille = ids(server, "1003")
    alice, carol = phones(server, tmp_path)
    async with browser(server, "1002") as ws, alice, carol:
        assert (await ws.register()).status == 200
        await alice.wait_event("REGISTER_OK", timeout=10)
        await carol.wait_event("REGISTER_OK", timeout=10)
        await alice.dial(f"sip:1003@{DOMAIN}")
        await carol.wait_event("CALL_ESTABLISHED", timeout=10)
        [call] = control.calls(company, camille)
        await control.transfer(company, camille, call.id, "1002")
        lucas_call = await take(ws, BOB_TONE)
        try:
            assert lucas_call.call_id == call.id
            await carol.wait_event("CALL_CLOSED", timeout=10)
            await lucas_call.hears(ALICE_TONE)
            await asyncio.sleep(1.5)
            await alice.hangup()
            await hung_up(ws)
            await alice.wait_event("CALL_CLOSED", timeout=10)
        finally:
            await lucas_call.media.close()
    ends_with(alice, BOB_TONE)


async def test_a_browser_attended_transfers_two_phones(server: NuageServer, tmp_path: Path) -> None:
    """Lucas (web app) calls Élodie, then Camille, and joins them: Camille's phone moves
    to the first call's ports, where Lucas's WebRTC side was; Lucas leaves both."""
    control = control_of(server)
    company, lucas = ids(server, "1002")
    alice, carol = phones(server, tmp_path)
    async with browser(server, "1002") as ws, alice, carol:
        assert (await ws.register()).status == 200
        await alice.wait_event("REGISTER_OK", timeout=10)
        await carol.wait_event("REGISTER_OK", timeout=10)
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
            await asyncio.sleep(2.5)
            await alice.hangup()
            await alice.wait_event("CALL_CLOSED", timeout=10)
            await carol.wait_event("CALL_CLOSED", timeout=10)
        finally:
            await first.media.close()
            if second is not None:
                await second.media.close()
    ends_with(alice, CAROL_TONE)
    ends_with(carol, ALICE_TONE)


async def test_a_browser_attended_transfers_a_phone_to_another_browser(
    server: NuageServer, tmp_path: Path
) -> None:
    """Lucas (web app) calls Élodie's phone, then Camille in her web app, and joins them:
    the phone moves to Camille's call, whose WebRTC side stays as it is."""
    control = control_of(server)
    company, lucas = ids(server, "1002")
    alice, _ = phones(server, tmp_path)
    async with browser(server, "1002") as ws, browser(server, "1003") as camille_ws, alice:
        assert (await ws.register()).status == 200
        assert (await camille_ws.register()).status == 200
        await alice.wait_event("REGISTER_OK", timeout=10)
        first = await place(ws, "1001", BOB_TONE)
        calls: list[BrowserCall] = [first]
        try:
            await first.hears(ALICE_TONE)
            placing = asyncio.ensure_future(place(ws, "1003", BOB_TONE))
            # G.711, as the phone: aiortc (unlike browsers) cannot change the codec it
            # sends when re-offered another one.
            calls.append(await take(camille_ws, CAROL_TONE, codecs=("PCMU",)))
            calls.append(await placing)
            await calls[1].hears(BOB_TONE)
            await asyncio.gather(
                control.attended_transfer(company, lucas, first.call_id, calls[2].call_id),
                hung_up(ws),
                hung_up(ws),
            )
            await calls[1].hears(ALICE_TONE)
            await asyncio.sleep(1.5)
            await alice.hangup()
            await hung_up(camille_ws)
            await alice.wait_event("CALL_CLOSED", timeout=10)
        finally:
            for call in calls:
                await call.media.close()
    ends_with(alice, CAROL_TONE)


async def test_a_browser_merges_two_phones_into_a_conference(
    server: NuageServer, tmp_path: Path
) -> None:
    """Lucas (web app) merges his calls with Élodie and Camille: each hears the two
    others through the mixer, the browser's leg as much as the phones'."""
    control = control_of(server)
    company, lucas = ids(server, "1002")
    alice, carol = phones(server, tmp_path)
    async with browser(server, "1002") as ws, alice, carol:
        assert (await ws.register()).status == 200
        await alice.wait_event("REGISTER_OK", timeout=10)
        await carol.wait_event("REGISTER_OK", timeout=10)
        first = await place(ws, "1001", BOB_TONE)
        second: BrowserCall | None = None
        try:
            await first.hears(ALICE_TONE)
            second = await place(ws, "1003", BOB_TONE)
            await second.hears(CAROL_TONE)
            # His dialog of the second call ends; he stays in the first.
            await asyncio.gather(
                control.conference(company, lucas, first.call_id, second.call_id), hung_up(ws)
            )
            await asyncio.sleep(3)
            mixed = first.media.heard[-100:]
            rate = mixed[-1][1]
            samples = np.concatenate([pcm for pcm, _ in mixed]) / 32768
            lucas_heard = audio.tones_in_frames(samples, rate, TONES)
            [view] = control.calls(company, lucas)
            assert view.state == "conference"
            assert {party.number for party in view.participants} == {"1001", "1003"}
            await asyncio.gather(control.hang_up(company, lucas, first.call_id), hung_up(ws))
            await alice.hangup()
            await alice.wait_event("CALL_CLOSED", timeout=10)
            await carol.wait_event("CALL_CLOSED", timeout=10)
        finally:
            await first.media.close()
            if second is not None:
                await second.media.close()
    both = frozenset({ALICE_TONE, CAROL_TONE})
    assert sum(1 for frame in lucas_heard if frame == both) > len(lucas_heard) / 2, lucas_heard
    for phone, other in ((alice, CAROL_TONE), (carol, ALICE_TONE)):
        samples, rate = phone.received_samples()
        frames = audio.tones_in_frames(samples, rate, TONES)[-100:]
        assert sum(1 for frame in frames if {other, BOB_TONE} <= frame) > 30, frames
