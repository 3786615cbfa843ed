"""The carrier simulator (nuage.carrier, the demo's trunk) against a real `nuage serve` and
a real baresip phone: outbound calls echo the phone's own audio, the busy number is busy,
and `nuage carrier call` rings the phone with a tone. Audio is checked by content."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from e2e.server import CARRIER_HOST, DOMAIN, NUAGE, USERS, NuageProcess, acme_plan, running_nuage
from nuage.carrier import CarrierSimulator
from peers import audio
from peers.baresip import BaresipPhone

PHONE_TONE, CARRIER_TONE = 1000.0, 440.0
TONES = (PHONE_TONE, CARRIER_TONE)


@contextlib.asynccontextmanager
async def _setup(
    tmp_path: Path,
) -> AsyncIterator[tuple[CarrierSimulator, NuageProcess, BaresipPhone]]:
    """The simulator on 127.0.0.2 (any port, which the plan's trunk then names), a server,
    and phone 1001 registered and sending its 1000 Hz tone."""
    carrier = CarrierSimulator(CARRIER_HOST, 0, answer_delay=0.5, hangup_after=1.0)
    await carrier.start()
    try:
        async with running_nuage(tmp_path / "nuage", acme_plan(carrier.port)) as nuage:
            phone = BaresipPhone(
                tmp_path,
                "1001",
                tone_wav=audio.write_tone_wav(tmp_path / "1001.wav", PHONE_TONE),
                domain=DOMAIN,
                password=USERS["1001"][2],
                proxy=f"sip:{nuage.sip_target}",
            )
            async with phone:
                await phone.wait_event("REGISTER_OK", timeout=10)
                yield carrier, nuage, phone
            await nuage.assert_idle()
        assert carrier.active_calls == 0
    finally:
        await carrier.close()


async def test_outbound_calls_echo_and_the_special_numbers_behave(tmp_path: Path) -> None:
    async with _setup(tmp_path) as (_carrier, nuage, phone):
        await phone.dial(f"sip:0475123456@{DOMAIN}")
        await phone.wait_event("CALL_RINGING", timeout=10)
        await phone.wait_event("CALL_ESTABLISHED", timeout=10)
        await asyncio.sleep(2.5)
        await phone.hangup()
        await phone.wait_event("CALL_CLOSED", timeout=10)
        heard = phone.received_audio(TONES)

        await phone.dial(f"sip:0470000486@{DOMAIN}")
        busy = await phone.wait_event(["CALL_CLOSED", "CALL_ESTABLISHED"], timeout=10)

        # Rings until the phone gives up (CANCEL through the server).
        await phone.dial(f"sip:0470000480@{DOMAIN}")
        await phone.wait_event("CALL_RINGING", timeout=10)
        await asyncio.sleep(1)
        await phone.hangup()
        await phone.wait_event("CALL_CLOSED", timeout=10)

        # Answers, then the carrier hangs up.
        await phone.dial(f"sip:0470000200@{DOMAIN}")
        await phone.wait_event("CALL_ESTABLISHED", timeout=10)
        await phone.wait_event("CALL_CLOSED", timeout=10)
        calls = await nuage.cli("calls", "--company", DOMAIN)

    # The carrier sent the phone's own tone back through the relay.
    assert audio.share(heard, PHONE_TONE) > 0.7, audio.describe(heard)
    assert busy.type == "CALL_CLOSED" and "486" in busy.param, busy
    # The server's call records tell the same story, one line per call.
    outcomes = {line.split()[4]: line.split()[5] for line in calls.splitlines() if "->" in line}
    assert outcomes == {
        "+32475123456": "answered",
        "+32470000486": "busy",
        "+32470000480": "cancelled",
        "+32470000200": "answered",
    }, calls


async def test_nuage_carrier_call_rings_the_numbers_phone_with_a_tone(tmp_path: Path) -> None:
    async with _setup(tmp_path) as (_carrier, nuage, phone):
        process = await asyncio.create_subprocess_exec(
            str(NUAGE),
            "carrier",
            "call",
            "+3225550100",
            "--server",
            nuage.sip_target,
            "--seconds",
            "2.5",
            "--tone",
            str(CARRIER_TONE),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        await phone.wait_event("CALL_CLOSED", timeout=10)
        heard = phone.received_audio(TONES)
    text = output.decode()

    assert process.returncode == 0, text
    assert "200 OK" in text and "hung up by carrier" in text, text
    sent, received = _packet_counts(text)
    # 2.5 s of 20 ms packets each way: the phone's audio reached the carrier too.
    assert sent > 100 and received > 80, text
    assert audio.share(heard, CARRIER_TONE) > 0.7, audio.describe(heard)


def _packet_counts(text: str) -> tuple[int, int]:
    """(sent, received) from "..., N RTP packets sent, M received, ..."."""
    found = re.search(r"(\d+) RTP packets sent, (\d+) received", text)
    assert found is not None, text
    return int(found.group(1)), int(found.group(2))


async def test_malformed_offers_get_488_and_a_bad_request_never_breaks_the_carrier(
    tmp_path: Path,
) -> None:
    """Raw INVITEs over a real socket: an unparsable offer, no offer, no G.711; then a
    well-formed OPTIONS still gets its 200."""
    carrier = CarrierSimulator(CARRIER_HOST, 0)
    await carrier.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            port = sock.getsockname()[1]
            opus = (
                "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n"
            )
            for n, body in enumerate(("v=0\r\nthis is not sdp\r\n", "", opus)):
                status = await _exchange(sock, carrier.port, _invite(n, port, body))
                assert status == 488, (n, status)
            options = _invite(9, port, "").replace("INVITE", "OPTIONS")
            assert await _exchange(sock, carrier.port, options) == 200
        assert carrier.active_calls == 0
    finally:
        await carrier.close()


def _invite(n: int, port: int, body: str) -> str:
    content_type = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"INVITE sip:+32475123456@{CARRIER_HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-test{n}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:+3225550100@127.0.0.1>;tag=t{n}\r\n"
        "To: <sip:+32475123456@127.0.0.2>\r\n"
        f"Call-ID: test-{n}\r\n"
        f"CSeq: 1 INVITE\r\n"
        f"Contact: <sip:nuage@127.0.0.1:{port}>\r\n"
        f"{content_type}Content-Length: {len(body)}\r\n\r\n{body}"
    )


async def _exchange(sock: socket.socket, carrier_port: int, request: str) -> int:
    """Send ``request``, return the first final status (ACKing a non-2xx is left out:
    the carrier's retransmissions are simply ignored)."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, request.encode(), (CARRIER_HOST, carrier_port))
    async with asyncio.timeout(5):
        while True:
            data = await loop.sock_recv(sock, 65535)
            status = int(data.split(b" ", 2)[1])
            if status >= 200:
                return status
