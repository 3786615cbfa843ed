"""A relay side as a WebRTC media port, against a real WebRTC stack (aiortc, as a browser
would be: full ICE, controlling, DTLS client, SRTP): its tone reaches a plain RTP phone
on the other side, decrypted; the phone's tone reaches it, encrypted; RTCP flows muxed.
The checks, the handshake and a wrong fingerprint are also tested on their own."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from nuage.media import sdp
from nuage.media.engine import LocalMediaEngine
from nuage.media.g711 import ulaw_decode, ulaw_encode
from nuage.media.relay import RelaySession
from nuage.media.webrtc.dtls import Certificate, DtlsSrtp
from nuage.media.webrtc.ice_lite import IceLiteResponder, new_credentials
from nuage.media.webrtc.sdp import (
    LocalParameters,
    is_webrtc,
    mids_of,
    our_setup,
    remote_parameters,
    to_plain,
    to_webrtc,
)
from peers import audio
from peers.webrtc import Tone, loopback_only

from . import free_udp_port_range
from .test_relay import HOST, phone, rtp, until

BROWSER_TONE, PHONE_TONE = 1000.0, 1500.0


@pytest.fixture(autouse=True)
def loopback_media(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture
async def session() -> AsyncIterator[RelaySession]:
    low = free_udp_port_range(40)
    engine = LocalMediaEngine(HOST, low, low + 39)
    yield await engine.create_session()
    await engine.close()


def phone_answer(offer: sdp.SessionDescription, port: int) -> sdp.SessionDescription:
    """What a desk phone at ``port`` answers a plain offer: PCMU."""
    assert "0" in offer.media[0].formats
    return sdp.parse(
        "v=0\r\no=desk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


async def test_a_browser_and_a_phone_hear_each_other(session: RelaySession) -> None:
    certificate = Certificate.generate()
    ufrag, pwd = new_credentials()
    browser = RTCPeerConnection()
    heard_by_browser: list[np.ndarray] = []
    failures: list[str] = []
    listening: list[asyncio.Task[None]] = []

    @browser.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def listen() -> None:
            while True:
                frame = await track.recv()
                heard_by_browser.append(frame.to_ndarray().reshape(-1))

        listening.append(asyncio.ensure_future(listen()))

    browser.addTrack(Tone(BROWSER_TONE))
    await browser.setLocalDescription(await browser.createOffer())
    offer = sdp.parse(browser.localDescription.sdp)
    assert is_webrtc(offer)
    remote = remote_parameters(offer)
    setup, client = our_setup(remote.setup)
    dtls = DtlsSrtp(certificate, client=client, remote_fingerprint=remote.fingerprint)
    ice = IceLiteResponder(ufrag, pwd, remote_ufrag=remote.ufrag)
    port = session.a.use_webrtc(ice, dtls, on_failure=failures.append)
    desk = await phone()
    # The offer as the desk phone gets it, its answer as the browser gets it: both
    # through the relay, each in its own flavour.
    to_desk = to_plain(sdp.anchor(offer, HOST, [session.b.rtp_port] * len(offer.media)))
    audio_to_desk = to_desk.media[0]
    assert audio_to_desk.proto == "RTP/AVP" and audio_to_desk.port == session.b.rtp_port
    assert {c.encoding.lower() for c in audio_to_desk.codecs} <= {
        "opus",
        "pcmu",
        "pcma",
        "g722",
        "telephone-event",
        "cn",
    }
    assert not {a.name for a in audio_to_desk.attributes} & {
        "fingerprint",
        "ice-ufrag",
        "ssrc",
        "mid",
    }
    answer = phone_answer(to_desk, desk.port)
    session.b.set_remote(HOST, desk.port)
    to_browser = to_webrtc(
        sdp.anchor(answer, HOST, [session.a.rtp_port]),
        LocalParameters(ufrag, pwd, certificate.fingerprint),
        setup=setup,
        mids=mids_of(offer),
    )
    try:
        await browser.setRemoteDescription(RTCSessionDescription(to_browser.serialize(), "answer"))
        await until(lambda: dtls.established)
        assert ice.nominated is not None and ice.nominated[0] == HOST
        # The browser's voice reaches the desk phone as plain PCMU RTP.
        packets = [await desk.receive() for _ in range(60)]
        media = [data for data, _ in packets if data[1] & 0x7F == 0]
        assert len(media) > 40
        pcm = np.concatenate([ulaw_decode(data[12:]) for data in media[-25:]])
        assert audio.dominant_tone(pcm / 32768, 8000, (BROWSER_TONE, PHONE_TONE)) == BROWSER_TONE
        # The desk phone's voice reaches the browser, encrypted on the way.
        tone = audio.tone(PHONE_TONE, 2.0) * 32767
        for n in range(100):
            chunk = tone[n * 160 : (n + 1) * 160].astype(np.int16)
            header = struct.pack("!BBHII", 0x80, 0, n, n * 160, 0xDE5C)
            desk.send(header + ulaw_encode(chunk), session.b.rtp_port)
            await asyncio.sleep(0.02)
        # aiortc decodes PCMU to 8 kHz mono frames.
        heard = np.concatenate(heard_by_browser[-40:]).astype(np.float64) / 32768
        assert audio.dominant_tone(heard, 8000, (BROWSER_TONE, PHONE_TONE)) == PHONE_TONE
        assert session.a.rtp_counters().packets_out >= 90
        assert failures == [] and port.dropped == 0
    finally:
        for task in listening:
            task.cancel()
        await browser.close()


async def test_a_wrong_fingerprint_fails_the_handshake() -> None:
    ours, theirs, impostor = Certificate.generate(), Certificate.generate(), Certificate.generate()
    server = DtlsSrtp(ours, client=False, remote_fingerprint=("sha-256", impostor.fingerprint))
    client = DtlsSrtp(theirs, client=True, remote_fingerprint=("sha-256", ours.fingerprint))
    flight = client.start()
    for _ in range(6):
        flight = [d for datagram in flight for d in server.receive(datagram)]
        flight = [d for datagram in flight for d in client.receive(datagram)]
    assert not server.established
    assert server.failure == "the peer's certificate does not match its SDP fingerprint"


async def test_checks_need_our_credentials(session: RelaySession) -> None:
    ufrag, pwd = new_credentials()
    assert len(ufrag) >= 4 and len(pwd) >= 22
    ice = IceLiteResponder(ufrag, pwd, remote_ufrag="them")
    # Not STUN, or not a binding request: nothing to answer.
    assert ice.handle(rtp(1), (HOST, 5000)) is None
    assert ice.handle(b"\x00\x01\x00\x00" + b"\x00" * 16, (HOST, 5000)) is None
    assert ice.nominated is None
