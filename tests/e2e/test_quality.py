"""Call quality (F9) of a real call whose impairments are known: Alice is a baresip
phone, Bob is sipp for the SIP (register, answer) and this test's own sockets for the
media. Bob's RTP goes out with a known loss (every tenth sequence number never sent) and
a known jitter (every other packet sent late by a fixed delay), so baresip's RTCP
reports about it must carry them; Bob's own RTCP claims a known loss and jitter about
Alice's stream. The server, which only reads the RTCP it relays, must show both.

Which figure is where (src/nuage/media/leg_quality.py): leg A of the call is Alice's
(the caller), and its figures come from the reports her phone sends, about the stream it
receives: what Alice *hears*, Bob's impaired RTP. Leg B's figures come from Bob's reports:
what Bob hears. The call-control service shows the worse of the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from e2e.server import DOMAIN, USERS
from e2e.test_call_control import ids, server
from nuage.media import quality
from nuage.media.rtcp import (
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    SenderReport,
    SourceDescription,
    compound,
    ntp_timestamp,
    parse_compound,
)
from nuage.media.rtp import HEADER, VERSION_BITS, RtpPacket
from nuage.pbx.calls import Call
from nuage.server import NuageServer
from peers import audio
from peers.baresip import BaresipPhone
from peers.ports import free_port, free_ports
from peers.sipp import SCENARIOS, SippServer, account_row, run_sipp

__all__ = ["server"]  # the in-process server fixture of test_call_control, shared

PCMU = 0
CLOCK_RATE = 8000
FRAME = 160  # 20 ms of PCMU
FRAME_S = FRAME / CLOCK_RATE

# What Bob's RTP suffers on its way (what Alice hears).
LOSS_EVERY = 10
"""Every tenth sequence number is never sent: 10 % loss."""
LATE_MS = 16.0
"""Every other packet sent leaves this much late. Consecutive packets then arrive
LATE_MS apart from their timestamps' spacing, one way or the other: the RFC 3550
interarrival jitter settles at LATE_MS. Less than a packet time: no reordering."""

# What Bob's RTCP claims about Alice's stream (what Bob hears).
CLAIMED_FRACTION = 13
"""13/256 = 5.08 % lost."""
CLAIMED_JITTER = 240
"""In timestamp units: 30 ms at 8 kHz."""
REPORT_INTERVAL = 1.0

CLEAN_MOS = 4.3
"""The least MOS of a clean loopback call (test_audio_baresip's quality test)."""


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, received: Callable[[bytes, float], None]) -> None:
        self._received = received
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's UDP transport does not subclass DatagramTransport (see relay.py).
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._received(data, asyncio.get_running_loop().time())

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, address)


class ImpairedMedia:
    """Bob's media on 127.0.0.1 ``port`` (RTP) and ``port`` + 1 (RTCP): sends PCMU with
    the loss and jitter above, receives Alice's stream, and reports on it every second
    with the claimed figures (and the true LSR/DLSR, for the round trip).

    The RTP stops the instant Alice's ``stop_after``-th report comes by (the RTCP goes
    on, as receiver reports): her next report then covers no packet at all, rather than
    the last few, whose loss would be that of a handful (one in three...)."""

    SSRC = 0x0B0B0B0B
    CNAME = "bob@127.0.0.1"

    def __init__(self, port: int, stop_after: int) -> None:
        self.port = port
        self._rtp = _Socket(self._on_rtp)
        self._rtcp = _Socket(self._on_rtcp)
        self.stats: ReceptionStats | None = None
        self.received_srs = 0
        self.packets_sent = 0
        self.octets_sent = 0
        self.offsets: list[float] = []
        """Send-time offset of each packet from its timestamp, in ms (the injected jitter
        as it really left, scheduling noise included)."""
        self._relay: tuple[str, int, int] | None = None
        self._sending = False
        self._stop_after = stop_after
        self.alice_reports: list[tuple[float, tuple[ReportBlock, ...]]] = []
        """The report blocks of Alice's RTCP, with their arrival (s since the start)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._start = 0.0
        self._sequence = 0x1234
        self._timestamp = 0x10000000

    async def __aenter__(self) -> ImpairedMedia:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self._rtp, local_addr=("127.0.0.1", self.port))
        await loop.create_datagram_endpoint(
            lambda: self._rtcp, local_addr=("127.0.0.1", self.port + 1)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._sending = False
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in (self._rtp, self._rtcp):
            if sock.transport is not None:
                sock.transport.close()

    def start(self, host: str, rtp_port: int, rtcp_port: int) -> None:
        """Send RTP and RTCP to the relay's ports for Bob (what its SDP to sipp said)."""
        self._relay = (host, rtp_port, rtcp_port)
        self._sending = True
        self._start = asyncio.get_running_loop().time()
        self._tasks.append(asyncio.create_task(self._send_rtp()))
        self._tasks.append(asyncio.create_task(self._send_rtcp()))

    @property
    def sending(self) -> bool:
        return self._sending

    async def _send_rtp(self) -> None:
        assert self._relay is not None
        loop = asyncio.get_running_loop()
        payload = bytes([0xFF]) * FRAME  # PCMU silence
        sent = 0
        frame = 0
        while self._sending:
            if frame % LOSS_EVERY != LOSS_EVERY - 1:
                late = LATE_MS / 1000 if sent % 2 else 0.0
                due = self._start + frame * FRAME_S + late
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not self._sending:
                    break
                self.offsets.append((loop.time() - self._start - frame * FRAME_S) * 1000)
                header = HEADER.pack(
                    VERSION_BITS,
                    PCMU,
                    (self._sequence + frame) & 0xFFFF,
                    (self._timestamp + frame * FRAME) & 0xFFFFFFFF,
                    self.SSRC,
                )
                self._rtp.send(header + payload, self._relay[:2])
                self.packets_sent += 1
                self.octets_sent += len(payload)
                sent += 1
            frame += 1

    async def _send_rtcp(self) -> None:
        assert self._relay is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            now = loop.time()
            blocks: tuple[ReportBlock, ...] = ()
            if self.stats is not None:
                block = self.stats.report_block(now)
                if block is not None:
                    claimed = dataclasses.replace(
                        block, fraction_lost=CLAIMED_FRACTION, jitter=CLAIMED_JITTER
                    )
                    blocks = (claimed,)
            report: SenderReport | ReceiverReport
            if self._sending:
                elapsed = int((now - self._start) * CLOCK_RATE)
                report = SenderReport(
                    self.SSRC,
                    ntp_timestamp(time.time()),
                    (self._timestamp + elapsed) & 0xFFFFFFFF,
                    self.packets_sent,
                    self.octets_sent,
                    blocks,
                )
            else:
                report = ReceiverReport(self.SSRC, blocks)
            data = compound(report, SourceDescription.cname(self.SSRC, self.CNAME))
            self._rtcp.send(data, (self._relay[0], self._relay[2]))

    def _on_rtp(self, data: bytes, arrival: float) -> None:
        packet = RtpPacket.parse(data)
        if self.stats is None or self.stats.ssrc != packet.ssrc:
            self.stats = ReceptionStats(packet.ssrc)
        self.stats.receive(packet.sequence, packet.timestamp, arrival, CLOCK_RATE)

    def _on_rtcp(self, data: bytes, arrival: float) -> None:
        for packet in parse_compound(data):
            if isinstance(packet, SenderReport | ReceiverReport) and packet.reports:
                # Alice's reports, forwarded by the relay as it reads them.
                self.alice_reports.append((round(arrival - self._start, 3), packet.reports))
                if len(self.alice_reports) == self._stop_after:
                    self._sending = False
            stats = self.stats
            if isinstance(packet, SenderReport) and stats and packet.ssrc == stats.ssrc:
                stats.sender_report(packet, arrival)
                self.received_srs += 1


def _uas_scenario(tmp_path: Path, media_port: int) -> Path:
    """uas_answer.xml with Bob's own media port in its SDP: sipp binds its -mp port
    itself, so the test's sockets take another one."""
    text = (SCENARIOS / "uas_answer.xml").read_text(encoding="iso-8859-1")
    sdp_line = "m=audio [media_port] RTP/AVP 0"
    assert sdp_line in text
    path = tmp_path / "uas_answer_own_media.xml"
    path.write_text(text.replace(sdp_line, f"m=audio {media_port} RTP/AVP 0"), "iso-8859-1")
    return path


async def _register_bob(server: NuageServer, sip_port: int, workdir: Path) -> None:
    result = await run_sipp(
        "register_auth.xml",
        f"127.0.0.1:{server.config.server.sip_port}",
        workdir=workdir,
        name="register-1002",
        local_port=sip_port,
        inject=[account_row("1002", USERS["1002"][2], DOMAIN)],
    )
    result.assert_ok(1)


def _alice(server: NuageServer, tmp_path: Path) -> BaresipPhone:
    return BaresipPhone(
        tmp_path,
        "1001",
        tone_wav=audio.write_tone_wav(tmp_path / "1001.wav", 1000.0),
        domain=DOMAIN,
        password=USERS["1001"][2],
        proxy=f"sip:127.0.0.1:{server.config.server.sip_port}",
    )


async def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


def _expected_jitter_ms(offsets: list[float]) -> float:
    """The interarrival jitter (RFC 3550 A.8, in ms) of packets sent with these offsets
    from their timestamps: what the receiver should report, loopback adding nothing."""
    jitter = 0.0
    for before, after in itertools.pairwise(offsets):
        jitter += (abs(after - before) - jitter) / 16
    return jitter


async def test_quality_shows_the_injected_loss_and_jitter_of_each_direction(
    server: NuageServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    control = server.control
    assert control is not None and server.service is not None
    company, alice_id = ids(server, "1001")
    _, bob_id = ids(server, "1002")
    bob_sip = free_port()
    media_port = free_ports(2)
    await _register_bob(server, bob_sip, tmp_path)
    bob = SippServer(
        _uas_scenario(tmp_path, media_port), workdir=tmp_path, local_port=bob_sip, calls=1
    )
    alice = _alice(server, tmp_path)
    async with ImpairedMedia(media_port, stop_after=2) as media, bob, alice:
        await alice.wait_event("REGISTER_OK", timeout=10)
        await alice.dial(f"sip:1002@{DOMAIN}")
        await alice.wait_event("CALL_ESTABLISHED", timeout=10)
        [view] = control.calls(company, alice_id)
        call: Call = next(c for c in server.service.calls.live_calls() if c.call_id == view.id)
        assert call.b is not None
        media.start("127.0.0.1", call.b.media.rtp_port, call.b.media.rtcp_port)
        heard_by_alice, heard_by_bob = call.quality.a, call.quality.b

        # baresip reports every 5 s: wait for two reports, the first of which may cover
        # the stream's start. Bob's RTP stops at the second (see ImpairedMedia).
        await _until(
            lambda: heard_by_alice.reports >= 2 and not media.sending, 20, "two reports from Alice"
        )
        assert heard_by_bob.reports >= 5
        alice_sample = heard_by_alice.current()
        bob_sample = heard_by_bob.current()
        now = control.quality(company, alice_id, view.id)
        [bobs_view] = control.calls(company, bob_id)
        injected_jitter = _expected_jitter_ms(media.offsets)
        figures: dict[str, object] = {
            "alice hears": alice_sample,
            "bob hears": bob_sample,
            "call": now,
            "alice rtt": heard_by_alice.rtt_ms,
            "bob rtt": heard_by_bob.rtt_ms,
            "jitter injected": injected_jitter,
        }

        # What Alice hears: Bob's stream as baresip measured it.
        assert alice_sample is not None, figures
        assert abs(alice_sample.loss_percent - 100 / LOSS_EVERY) <= 3, figures
        assert abs(alice_sample.jitter_ms - injected_jitter) <= 5, figures
        # What Bob hears: exactly what his reports claimed.
        assert bob_sample is not None, figures
        assert bob_sample.loss_percent == CLAIMED_FRACTION * 100 / 256, figures
        assert bob_sample.jitter_ms == CLAIMED_JITTER * 1000 / CLOCK_RATE, figures
        # Both legs' round trips measured, from each side's echo of the other's SRs.
        alice_rtt, bob_rtt = heard_by_alice.rtt_ms, heard_by_bob.rtt_ms
        assert alice_rtt is not None and 0 <= alice_rtt < 50, figures
        assert bob_rtt is not None and 0 <= bob_rtt < 50, figures
        # The call shows the worse direction, with the end-to-end round trip.
        assert now is not None and bobs_view.quality == now, figures
        assert now.mos == min(alice_sample.mos, bob_sample.mos), figures
        assert now.loss_percent == alice_sample.loss_percent, figures
        assert now.rtt_ms == pytest.approx(alice_rtt + bob_rtt)
        assert now.mos == pytest.approx(
            quality.mos(now.loss_percent, now.jitter_ms, now.rtt_ms, quality.G711)
        )
        # 10 % loss costs G.711 with concealment about 27 R points (MOS 3.4, "many users
        # dissatisfied"), 5 % about 16 (MOS 3.9): both well below a clean call.
        assert 3.0 < now.mos < CLEAN_MOS - 0.6, figures
        assert 3.5 < bob_sample.mos < CLEAN_MOS - 0.2, figures
        assert control.call(company, alice_id, view.id).quality == now

        # Bob's RTP has stopped: Alice's phone goes on reporting, about a stream that no
        # longer moves. That must neither fail nor make a sample (a perfect or an awful
        # one): the figures of the last report with audio stand.
        reports = heard_by_alice.reports
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 8
        last = heard_by_alice.current()
        while not heard_by_alice.idle:
            # A report that still covered a packet (one in flight at the stop) is a sample.
            last = heard_by_alice.current()
            assert loop.time() < deadline, ("no report on the stalled stream", figures)
            await asyncio.sleep(0.05)
        figures["after the stop"] = heard_by_alice.current()
        figures["alice reports"] = media.alice_reports
        assert heard_by_alice.reports <= reports + 1, figures
        assert heard_by_alice.current() is last, figures
        stalled = control.quality(company, alice_id, view.id)
        assert stalled is not None and 1.0 <= stalled.mos <= 4.5, figures

        await alice.hangup()
        (await bob.wait(10)).assert_ok(1)
    assert server.media is not None and server.media.active_sessions == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
    print(figures)  # shown with -s: the measured figures
