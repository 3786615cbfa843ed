"""The anchored relay with real UDP sockets on 127.0.0.1 standing in for phones A and B.

Every test runs on the default asyncio loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest
import uvloop

from nuage.media.engine import LocalMediaEngine
from nuage.media.ports import PortsExhaustedError
from nuage.media.relay import RELATCH_AFTER, Counters, RelaySession
from nuage.media.rtp import RtpPacket
from nuage.media.sdp import RtpMap
from peers.waiting import until

from . import free_udp_port_range

HOST = "127.0.0.1"


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    if request.param == "uvloop":
        policy: asyncio.AbstractEventLoopPolicy = uvloop.EventLoopPolicy()
        return policy
    return asyncio.DefaultEventLoopPolicy()


def rtp(sequence: int, ssrc: int = 0x1234, size: int = 172) -> bytes:
    header = struct.pack("!BBHII", 0x80, 0, sequence, sequence * 160, ssrc)
    return header + bytes([sequence % 256]) * (size - len(header))


def rtcp(ssrc: int = 0x1234) -> bytes:
    # An empty receiver report: V=2, RC=0, PT=201, length 1 (two 32-bit words).
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


class Phone(asyncio.DatagramProtocol):
    """One UDP socket of a test phone; keeps what it receives, with the source."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))

    @property
    def port(self) -> int:
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def send(self, data: bytes, port: int) -> None:
        self.transport.sendto(data, (HOST, port))

    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.received.get(), 2)

    async def receive_many(self, count: int) -> list[bytes]:
        return [(await self.receive())[0] for _ in range(count)]


async def phone() -> Phone:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(Phone, local_addr=(HOST, 0))
    return protocol


@pytest.fixture
async def engine() -> AsyncIterator[LocalMediaEngine]:
    low = free_udp_port_range(200)
    media = LocalMediaEngine(HOST, low, low + 199)
    yield media
    await media.close()


@pytest.fixture
async def session(engine: LocalMediaEngine) -> RelaySession:
    return await engine.create_session()


async def test_sides_advertise_bound_even_ports(
    engine: LocalMediaEngine, session: RelaySession
) -> None:
    for side in (session.a, session.b):
        assert side.local_address == HOST
        assert side.rtp_port % 2 == 0
        assert side.rtcp_port == side.rtp_port + 1
        assert engine.ports.port_min <= side.rtp_port < side.rtcp_port <= engine.ports.port_max
    assert session.a.rtp_port != session.b.rtp_port
    assert engine.active_sessions == 1


async def test_packets_both_ways_arrive_intact_and_in_order(session: RelaySession) -> None:
    a, b = await phone(), await phone()
    session.a.set_remote(HOST, a.port)
    session.b.set_remote(HOST, b.port)
    sent = [rtp(n) for n in range(50)]
    for packet in sent:
        a.send(packet, session.a.rtp_port)
    assert await b.receive_many(50) == sent
    replies = [rtp(n, ssrc=0x5678, size=60 + n) for n in range(50)]
    for packet in replies:
        b.send(packet, session.b.rtp_port)
    assert await a.receive_many(50) == replies
    # Each phone hears the relay from the port it was told about in SDP.
    a.send(rtp(99), session.a.rtp_port)
    assert (await b.receive())[1] == (HOST, session.b.rtp_port)

    size_a = 50 * 172 + 172
    size_b = sum(len(p) for p in replies)
    assert session.a.rtp_counters() == Counters(51, size_a, 50, size_b, 0)
    assert session.b.rtp_counters() == Counters(50, size_b, 51, size_a, 0)


async def test_latching_follows_the_nat_source_not_the_sdp(session: RelaySession) -> None:
    a_sdp, a_nat, b = await phone(), await phone(), await phone()
    session.a.set_remote(HOST, a_sdp.port)  # the private address A wrote in its SDP
    session.b.set_remote(HOST, b.port)
    # Until A sends, the SDP address is all there is.
    b.send(rtp(1), session.b.rtp_port)
    assert (await a_sdp.receive())[0] == rtp(1)
    assert not session.a.latched
    # A's packets really come from its NAT mapping: the relay answers there.
    a_nat.send(rtp(2), session.a.rtp_port)
    assert (await b.receive())[0] == rtp(2)
    assert session.a.latched
    assert session.a.remote == (HOST, a_nat.port)
    b.send(rtp(3), session.b.rtp_port)
    assert (await a_nat.receive())[0] == rtp(3)
    assert a_sdp.received.empty()


async def test_comedia_without_any_sdp_address(session: RelaySession) -> None:
    a, b = await phone(), await phone()
    # Before B is known, A's packet has nowhere to go: dropped and counted (A is latched).
    a.send(rtp(1), session.a.rtp_port)
    await until(lambda: session.a.rtp_counters().dropped == 1)
    b.send(rtp(2), session.b.rtp_port)
    assert (await a.receive())[0] == rtp(2)
    a.send(rtp(3), session.a.rtp_port)
    assert (await b.receive())[0] == rtp(3)
    assert session.b.remote == (HOST, b.port)


async def test_rtcp_is_relayed_on_the_next_port(session: RelaySession) -> None:
    a_rtp, a_rtcp, b_rtp, b_rtcp = await phone(), await phone(), await phone(), await phone()
    session.a.set_remote(HOST, a_rtp.port, a_rtcp.port)
    session.b.set_remote(HOST, b_rtp.port, b_rtcp.port)
    a_rtcp.send(rtcp(1), session.a.rtcp_port)
    data, source = await b_rtcp.receive()
    assert (data, source) == (rtcp(1), (HOST, session.b.rtcp_port))
    b_rtcp.send(rtcp(2), session.b.rtcp_port)
    assert (await a_rtcp.receive())[0] == rtcp(2)
    assert b_rtp.received.empty()
    assert a_rtp.received.empty()
    assert session.a.rtcp_counters() == Counters(1, 8, 1, 8, 0)
    assert session.a.rtp_counters() == Counters(0, 0, 0, 0, 0)


async def test_garbage_neither_latches_nor_breaks_the_session(session: RelaySession) -> None:
    a, b = await phone(), await phone()
    session.b.set_remote(HOST, b.port)
    # A plain socket: asyncio's transport will not send an empty datagram.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        for junk in (b"", b"\x80", b"x" * 11, b"\x00" * 172, b"GET / HTTP/1.1\r\n\r\n"):
            stranger.sendto(junk, (HOST, session.a.rtp_port))
    await until(lambda: session.a.rtp_counters().packets_in == 5)
    assert not session.a.latched
    assert session.a.rtp_counters().dropped == 5
    a.send(rtp(1), session.a.rtp_port)
    assert (await b.receive())[0] == rtp(1)
    # Once latched, whatever the latched phone sends is relayed as is.
    a.send(b"\x00garbage", session.a.rtp_port)
    assert (await b.receive())[0] == b"\x00garbage"
    b.send(rtp(2), session.b.rtp_port)
    assert (await a.receive())[0] == rtp(2)


async def test_a_stray_source_cannot_take_over_a_talking_peer(session: RelaySession) -> None:
    a, b, attacker = await phone(), await phone(), await phone()
    session.b.set_remote(HOST, b.port)
    a.send(rtp(1), session.a.rtp_port)
    await b.receive()
    for n in range(3 * RELATCH_AFTER):
        attacker.send(rtp(100 + n, ssrc=666), session.a.rtp_port)
        if n % (RELATCH_AFTER - 1) == 0:
            a.send(rtp(2 + n), session.a.rtp_port)
    a.send(rtp(1000), session.a.rtp_port)
    received = []
    while (packet := (await b.receive())[0]) != rtp(1000):
        received.append(packet)
    assert all(struct.unpack_from("!I", p, 8)[0] == 0x1234 for p in received)
    assert session.a.remote == (HOST, a.port)


async def test_a_peer_whose_address_changed_is_relatched(session: RelaySession) -> None:
    a_old, a_new, b = await phone(), await phone(), await phone()
    session.b.set_remote(HOST, b.port)
    a_old.send(rtp(1), session.a.rtp_port)
    await b.receive()
    # A's NAT mapping changes mid-call: after RELATCH_AFTER packets the new one wins.
    for n in range(RELATCH_AFTER):
        a_new.send(rtp(2 + n), session.a.rtp_port)
    assert (await b.receive())[0] == rtp(1 + RELATCH_AFTER)
    assert session.a.remote == (HOST, a_new.port)
    assert session.a.rtp_counters().dropped == RELATCH_AFTER - 1
    b.send(rtp(50), session.b.rtp_port)
    assert (await a_new.receive())[0] == rtp(50)


async def test_set_remote_reopens_the_latch(session: RelaySession) -> None:
    a_first, a_second, b = await phone(), await phone(), await phone()
    session.b.set_remote(HOST, b.port)
    a_first.send(rtp(1), session.a.rtp_port)
    await b.receive()
    # A re-INVITE moves A's media: the next source latches at once.
    session.a.set_remote(HOST, a_second.port)
    assert not session.a.latched
    b.send(rtp(2), session.b.rtp_port)
    assert (await a_second.receive())[0] == rtp(2)
    a_second.send(rtp(3), session.a.rtp_port)
    assert (await b.receive())[0] == rtp(3)
    assert session.a.latched


async def test_null_address_means_do_not_send(session: RelaySession) -> None:
    a, b = await phone(), await phone()
    session.a.set_remote(HOST, a.port)
    session.a.set_remote("0.0.0.0", a.port)  # RFC 2543 hold
    assert session.a.remote is None
    b.send(rtp(1), session.b.rtp_port)
    await until(lambda: session.b.rtp_counters().dropped == 1)
    assert a.received.empty()


async def test_set_remote_rejects_names_and_other_families(session: RelaySession) -> None:
    with pytest.raises(ValueError, match="IP address"):
        session.a.set_remote("phone.example", 5000)
    with pytest.raises(ValueError, match="IPv6"):
        session.a.set_remote("::1", 5000)
    with pytest.raises(ValueError, match="port"):
        session.a.set_remote(HOST, 65536)


async def test_close_releases_ports_and_is_idempotent(
    engine: LocalMediaEngine, session: RelaySession
) -> None:
    a, b = await phone(), await phone()
    session.a.set_remote(HOST, a.port)
    session.b.set_remote(HOST, b.port)
    ports = [session.a.rtp_port, session.a.rtcp_port, session.b.rtp_port, session.b.rtcp_port]
    await asyncio.gather(session.close(), session.close())
    await session.close()
    assert session.closed
    assert engine.active_sessions == 0
    assert engine.ports.in_use == 0
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, port))


async def test_port_exhaustion_is_a_clear_error_and_leaks_nothing() -> None:
    low = free_udp_port_range(6)
    engine = LocalMediaEngine(HOST, low, low + 5)  # three pairs: one session and a half
    try:
        first = await engine.create_session()
        with pytest.raises(PortsExhaustedError, match="no free RTP port pair"):
            await engine.create_session()
        assert engine.ports.in_use == 2
        await first.close()
        second = await engine.create_session()
        assert engine.active_sessions == 1
        # The FIFO hands out the pair nobody used last before the released ones.
        assert second.a.rtp_port == low + 4
    finally:
        await engine.close()
    assert engine.ports.in_use == 0
    with pytest.raises(RuntimeError, match="closed"):
        await engine.create_session()


async def test_fifty_sessions_at_once_on_a_small_range() -> None:
    low = free_udp_port_range(200)
    engine = LocalMediaEngine(HOST, low, low + 199)
    sessions = await asyncio.gather(*(engine.create_session() for _ in range(50)))
    assert engine.active_sessions == 50
    phones = [(await phone(), await phone()) for _ in sessions]
    for n, (session, (a, b)) in enumerate(zip(sessions, phones, strict=True)):
        session.a.set_remote(HOST, a.port)
        session.b.set_remote(HOST, b.port)
        a.send(rtp(n, ssrc=n), session.a.rtp_port)
        b.send(rtp(n, ssrc=1000 + n), session.b.rtp_port)
    for n, (a, b) in enumerate(phones):
        assert (await b.receive())[0] == rtp(n, ssrc=n)
        assert (await a.receive())[0] == rtp(n, ssrc=1000 + n)
    await engine.close()
    assert engine.active_sessions == 0
    assert engine.ports.in_use == 0
    # Every port came back: the whole range (100 pairs) can be bound again.
    pairs = [engine.ports.allocate() for _ in range(100)]
    with pytest.raises(PortsExhaustedError):
        engine.ports.allocate()
    for pair in pairs:
        engine.ports.release(pair)


async def test_public_address_is_advertised() -> None:
    low = free_udp_port_range(4)
    engine = LocalMediaEngine("0.0.0.0", low, low + 3, public_address="203.0.113.7")
    session = await engine.create_session()
    assert session.a.local_address == session.b.local_address == "203.0.113.7"
    await engine.close()
    with pytest.raises(ValueError, match="public_address is required"):
        LocalMediaEngine("0.0.0.0", low, low + 3)


async def test_a_send_error_does_not_break_the_session(session: RelaySession) -> None:
    a, b = await phone(), await phone()
    session.a.set_remote(HOST, a.port)
    # Broadcast without SO_BROADCAST: sendto fails with EACCES on every loop.
    session.b.set_remote("255.255.255.255", 9)
    a.send(rtp(1), session.a.rtp_port)
    await until(lambda: session.a.rtp_counters().packets_in == 1)
    session.b.set_remote(HOST, b.port)
    a.send(rtp(2), session.a.rtp_port)
    assert (await b.receive())[0] == rtp(2)
    b.send(rtp(3), session.b.rtp_port)
    assert (await a.receive())[0] == rtp(3)


async def test_a_side_hears_a_sound_or_nothing_instead_of_the_other_side(
    engine: LocalMediaEngine, session: RelaySession
) -> None:
    a, b = await phone(), await phone()
    session.a.set_remote(HOST, a.port)
    session.b.set_remote(HOST, b.port)
    session.b.play(engine.music_on_hold, RtpMap(0, "PCMU", 8000))
    assert session.b.hears == "sound"
    # B gets the music from its relay port, in its codec, and none of A's packets.
    a.send(rtp(1, ssrc=0xA), session.a.rtp_port)
    music = [RtpPacket.parse(data) for data in await b.receive_many(10)]
    assert {(p.payload_type, p.ssrc != 0xA) for p in music} == {(0, True)}
    assert music[0].marker
    # A still hears B.
    b.send(rtp(2, ssrc=0xB), session.b.rtp_port)
    assert await until_received(a, rtp(2, ssrc=0xB))

    session.b.silence()
    assert session.b.hears == "nothing"
    await asyncio.sleep(0.05)
    last_music = music[-1].sequence
    while not b.received.empty():
        last_music = RtpPacket.parse(b.received.get_nowait()[0]).sequence
    a.send(rtp(3, ssrc=0xA), session.a.rtp_port)
    await asyncio.sleep(0.1)
    assert b.received.empty()

    session.b.relay()
    assert session.b.hears == "peer"
    a.send(rtp(4, ssrc=0xA), session.a.rtp_port)
    # A's stream continues the numbering B last heard (the music's): nothing it gets is
    # "late"; all else is A's packet as sent.
    resumed = (await b.receive())[0]
    assert RtpPacket.parse(resumed).sequence == (last_music + 1) & 0xFFFF
    assert resumed[:2] + resumed[4:] == rtp(4, ssrc=0xA)[:2] + rtp(4, ssrc=0xA)[4:]
    assert len(engine.clock) == 0


async def until_received(phone: Phone, packet: bytes) -> bool:
    """Whether ``packet`` arrives among the next packets (others may come first)."""
    for _ in range(50):
        if (await phone.receive())[0] == packet:
            return True
    return False


async def test_closing_a_session_stops_its_sound(engine: LocalMediaEngine) -> None:
    session = await engine.create_session()
    session.a.play(engine.music_on_hold, RtpMap(8, "PCMA", 8000))
    assert len(engine.clock) == 1
    await session.close()
    assert len(engine.clock) == 0


async def test_a_new_source_continues_the_numbering_its_listener_had(
    session: RelaySession,
) -> None:
    """After a transfer another party sends on the same side, numbered from anywhere: the
    party listening gets it numbered after what it had (a phone's jitter buffer, a
    browser's SRTP replay window would drop it as late); SSRC and payload unchanged."""
    a, c, b = await phone(), await phone(), await phone()
    session.b.set_remote(HOST, b.port)
    session.a.set_remote(HOST, a.port)
    a.send(rtp(40000, ssrc=0xA), session.a.rtp_port)
    assert (await b.receive())[0] == rtp(40000, ssrc=0xA)
    a.send(rtp(40001, ssrc=0xA), session.a.rtp_port)
    assert (await b.receive())[0] == rtp(40001, ssrc=0xA)
    session.a.set_remote(HOST, c.port)  # C takes A's place on the same ports
    for sent, expected in ((7, 40002), (8, 40003), (10, 40005)):
        c.send(rtp(sent, ssrc=0xC), session.a.rtp_port)
        got = RtpPacket.parse((await b.receive())[0])
        assert (got.ssrc, got.sequence, got.payload) == (0xC, expected, bytes([sent]) * 160)


async def test_exchanged_sides_keep_their_ports_and_change_partners(
    engine: LocalMediaEngine,
) -> None:
    """An attended transfer joining two browsers: C's side (its ports, which a browser's
    DTLS is bound to) moves to the first session in place of A's, which goes to the
    second. Each party keeps sending to the same ports and now reaches the other
    session's party; what listened at a place hears the party now there."""
    first, second = await engine.create_session(), await engine.create_session()
    a, b, c, d = await phone(), await phone(), await phone(), await phone()
    for side, party in ((first.a, a), (first.b, b), (second.a, c), (second.b, d)):
        side.set_remote(HOST, party.port)
    heard_at_first_a: list[bytes] = []
    reports_at_first_a: list[bytes] = []
    first.a.add_listener(heard_at_first_a.append)
    first.a.add_listener(reports_at_first_a.append, rtcp=True)
    a_side, c_side = first.a, second.a
    first.exchange(a_side, second, c_side)
    assert (first.a, second.a) == (c_side, a_side)

    c.send(rtp(1, ssrc=0xC), c_side.rtp_port)
    assert (await b.receive()) == (rtp(1, ssrc=0xC), (HOST, first.b.rtp_port))
    b.send(rtp(2, ssrc=0xB), first.b.rtp_port)
    assert (await c.receive()) == (rtp(2, ssrc=0xB), (HOST, c_side.rtp_port))
    a.send(rtp(3, ssrc=0xA), a_side.rtp_port)
    assert (await d.receive())[0] == rtp(3, ssrc=0xA)
    c.send(rtcp(0xC), c_side.rtcp_port)
    await until(lambda: reports_at_first_a == [rtcp(0xC)])
    assert heard_at_first_a == [rtp(1, ssrc=0xC)]

    # Each side's ports go back with the session it ended in.
    await second.close()
    assert engine.ports.in_use == 2
    c.send(rtp(4, ssrc=0xC), c_side.rtp_port)
    assert (await b.receive())[0] == rtp(4, ssrc=0xC)
    await first.close()
    assert engine.ports.in_use == 0 and engine.active_sessions == 0
