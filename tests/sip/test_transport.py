"""The UDP/TCP transport layer against real sockets on 127.0.0.1 and ::1 (no mocks).

Every test runs on the default asyncio loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, cast

import pytest
import uvloop

from nuage.sip.message import Headers, Message, Request, Response, make_response
from nuage.sip.parser import parse_message
from nuage.sip.peer import Peer
from nuage.sip.transport import TransportLayer
from peers.ports import free_port
from peers.waiting import until

pytestmark = pytest.mark.timeout(30)

WAIT = 2.0


# IPv6 loopback is part of the test machine (Debian's default, and Redis binds it too):
# without it these tests fail rather than skip, so a broken machine is noticed.
HOSTS = ["127.0.0.1", "::1"]


LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def on_each_loop(scenario: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Make an async test a sync one run once on asyncio's loop and once on uvloop.

    pytest-asyncio only offers a loop choice through a conftest hook, and that would
    change the loop of every test in the suite, not just these.
    """

    def test(loop: str, **arguments: Any) -> None:
        with asyncio.Runner(loop_factory=LOOP_FACTORIES[loop]) as runner:
            runner.run(scenario(**arguments))

    parameters = inspect.signature(scenario).parameters.values()
    loop_parameter = inspect.Parameter("loop", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    test.__signature__ = inspect.Signature([loop_parameter, *parameters])  # type: ignore[attr-defined]
    test.__name__ = scenario.__name__
    test.__qualname__ = scenario.__qualname__
    test.__doc__ = scenario.__doc__
    parametrized: Callable[..., None] = pytest.mark.parametrize("loop", list(LOOP_FACTORIES))(test)
    return parametrized


def options(
    via: str = "SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK-1;rport",
    *,
    call_id: str = "call-1@test",
    cseq: str = "1 OPTIONS",
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    head = (
        "OPTIONS sip:pbx@example.com SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:pbx@example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


class Collector:
    """The on_message and on_send_error callbacks, queueing what they get."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[Request | Response, Peer]] = asyncio.Queue()
        self.errors: asyncio.Queue[tuple[Message, Peer, Exception]] = asyncio.Queue()

    def on_message(self, message: Request | Response, peer: Peer) -> None:
        self.messages.put_nowait((message, peer))

    def on_send_error(self, message: Message, peer: Peer, exc: Exception) -> None:
        self.errors.put_nowait((message, peer, exc))

    async def next(self) -> tuple[Request | Response, Peer]:
        return await asyncio.wait_for(self.messages.get(), WAIT)


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def recv(self) -> bytes:
        return await asyncio.wait_for(self.received.get(), WAIT)


async def udp_client(address: tuple[str, int]) -> UdpClient:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(UdpClient, remote_addr=address)
    return protocol


@contextlib.asynccontextmanager
async def started(**options: Any) -> AsyncIterator[tuple[TransportLayer, Collector]]:
    """A layer listening on UDP and TCP on both loopbacks, with a short idle timeout."""
    collector = Collector()
    options.setdefault("tcp_idle_timeout", 0.3)
    layer = TransportLayer(collector.on_message, on_send_error=collector.on_send_error, **options)
    try:
        for host in HOSTS:
            await layer.listen_udp(host, 0)
            await layer.listen_tcp(host, 0)
        yield layer, collector
    finally:
        await layer.close()


def bound(layer: TransportLayer, transport: str, host: str) -> tuple[str, int]:
    return next(a for a in layer.local_addresses(transport) if a[0] == host)


# --- UDP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
@on_each_loop
async def test_udp_request_gets_received_and_rport(host: str) -> None:
    async with started() as (layer, collector):
        client = await udp_client(bound(layer, "udp", host))
        client.send(options())
        message, peer = await collector.next()
        assert isinstance(message, Request)
        assert message.method == "OPTIONS"
        assert peer == Peer("udp", host, client.port)
        via = message.top_via
        assert via.host == "192.0.2.10"
        assert via.params["received"] == host
        assert via.params["rport"] == str(client.port)
        assert via.branch == "z9hG4bK-1"
        assert layer.stats.received == 1


@on_each_loop
async def test_udp_via_matching_source_is_left_alone() -> None:
    async with started() as (layer, collector):
        client = await udp_client(bound(layer, "udp", "127.0.0.1"))
        client.send(options(via=f"SIP/2.0/UDP 127.0.0.1:{client.port};branch=z9hG4bK-2"))
        message, _ = await collector.next()
        assert "received" not in message.top_via.params
        assert "rport" not in message.top_via.params


@on_each_loop
async def test_udp_only_top_via_is_stamped() -> None:
    async with started() as (layer, collector):
        client = await udp_client(bound(layer, "udp", "127.0.0.1"))
        client.send(
            options(
                via="SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-3, "
                "SIP/2.0/UDP 192.0.2.11;branch=z9hG4bK-x",
                extra="Via: SIP/2.0/UDP 192.0.2.12;branch=z9hG4bK-y\r\n",
            )
        )
        message, _ = await collector.next()
        vias = message.vias
        assert [v.host for v in vias] == ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
        assert vias[0].params["received"] == "127.0.0.1"
        assert "received" not in vias[1].params
        assert "received" not in vias[2].params


@pytest.mark.parametrize("host", HOSTS)
@on_each_loop
async def test_udp_response_routed_to_received_and_rport(host: str) -> None:
    async with started() as (layer, collector):
        client = await udp_client(bound(layer, "udp", host))
        client.send(options())
        request, peer = await collector.next()
        assert isinstance(request, Request)
        response = make_response(request, 200)
        assert layer.response_destination(response.top_via, peer) == peer
        layer.send(response, peer)
        data = await client.recv()
        assert data.startswith(b"SIP/2.0 200 OK\r\n")
        assert layer.stats.sent == 1


@on_each_loop
async def test_udp_response_without_rport_goes_to_sent_by_port() -> None:
    async with started() as (layer, collector):
        listener = await udp_client(bound(layer, "udp", "127.0.0.1"))
        sender = await udp_client(bound(layer, "udp", "127.0.0.1"))
        # The sender names another socket's port in its Via, as a UA without rport support
        # listening on a fixed port would: the response must go there.
        sender.send(options(via=f"SIP/2.0/UDP 127.0.0.1:{listener.port};branch=z9hG4bK-4"))
        request, peer = await collector.next()
        assert isinstance(request, Request)
        layer.send(make_response(request, 200), peer)
        assert (await listener.recv()).startswith(b"SIP/2.0 200")
        assert sender.received.empty()


@on_each_loop
async def test_a_response_sent_again_goes_where_the_retransmitted_request_says() -> None:
    async with started() as (layer, collector):
        client = await udp_client(bound(layer, "udp", "127.0.0.1"))
        client.send(options())
        request, peer = await collector.next()
        assert isinstance(request, Request)
        sent = bytes(make_response(request, 200))
        layer.send_again(sent, request, peer)
        assert await client.recv() == sent
        # Nowhere to go: counted, not reported (the request's next retransmission tries).
        broken = Request("OPTIONS", request.uri, Headers([("Via", "garbage")]))
        layer.send_again(sent, broken, peer)
        await asyncio.sleep(0.05)
        assert layer.stats.send_errors == 1
        assert collector.errors.empty() and client.received.empty()


@on_each_loop
async def test_udp_incoming_response_passed_up() -> None:
    async with started() as (layer, collector):
        client = await udp_client(bound(layer, "udp", "127.0.0.1"))
        client.send(
            b"SIP/2.0 180 Ringing\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-5\r\n"
            b"From: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>;tag=b\r\n"
            b"Call-ID: r1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
        message, peer = await collector.next()
        assert isinstance(message, Response)
        assert message.status == 180
        assert peer.port == client.port


@on_each_loop
async def test_udp_malformed_request_gets_400() -> None:
    async with started() as (layer, collector):
        client = await udp_client(bound(layer, "udp", "127.0.0.1"))
        client.send(options(cseq="x OPTIONS"))
        answer = await client.recv()
        assert answer.startswith(b"SIP/2.0 400 ")
        assert b"Call-ID: call-1@test\r\n" in answer
        assert b"branch=z9hG4bK-1" in answer
        assert b";tag=" in answer.split(b"\r\nTo:", 1)[1].split(b"\r\n", 1)[0]
        assert layer.stats.rejected == 1
        assert collector.messages.empty()


@on_each_loop
async def test_udp_malformed_ack_is_not_answered() -> None:
    async with started() as (layer, collector):
        client = await udp_client(bound(layer, "udp", "127.0.0.1"))
        client.send(options(cseq="x OPTIONS").replace(b"OPTIONS sip:", b"ACK sip:", 1))
        client.send(options(call_id="after"))
        message, _ = await collector.next()
        assert message.call_id == "after"
        assert client.received.empty()


@on_each_loop
async def test_udp_garbage_dropped_and_counted() -> None:
    async with started() as (layer, collector):
        client = await udp_client(bound(layer, "udp", "127.0.0.1"))
        for junk in (b"hello\x00world", b"\xff" * 100, b"SIP/2.0 200\r\n\r\n", b"\x00" * 40):
            client.send(junk)
        client.send(options(call_id="after"))
        message, _ = await collector.next()
        assert message.call_id == "after"
        assert layer.stats.dropped == 4
        assert layer.stats.received == 1
        assert client.received.empty()


@on_each_loop
async def test_failing_callback_does_not_break_the_transport() -> None:
    seen: list[str] = []

    def on_message(message: Request | Response, peer: Peer) -> None:
        seen.append(message.call_id)
        if len(seen) == 1:
            raise RuntimeError("a bug above the transport")

    layer = TransportLayer(on_message)
    await layer.listen_udp("127.0.0.1", 0)
    try:
        client = await udp_client(layer.local_addresses("udp")[0])
        client.send(options(call_id="first"))
        client.send(options(call_id="second"))
        await until(lambda: len(seen) == 2, within=WAIT)
        assert seen == ["first", "second"]
        assert layer.stats.callback_errors == 1
    finally:
        await layer.close()


@on_each_loop
async def test_udp_empty_and_keepalive_datagrams() -> None:
    async with started() as (layer, _collector):
        address = bound(layer, "udp", "127.0.0.1")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"", address)
            sock.sendto(b"\r\n\r\n", address)
        await until(lambda: layer.stats.dropped + layer.stats.keepalives == 2, within=WAIT)
        assert layer.stats.dropped == 1
        assert layer.stats.keepalives == 1


@on_each_loop
async def test_udp_flood_of_garbage_leaves_transport_working() -> None:
    async with started() as (layer, collector):
        rng = random.Random(3261)
        valid = options()
        client = await udp_client(bound(layer, "udp", "127.0.0.1"))
        for i in range(1000):
            kind = i % 4
            if kind == 0:
                junk = rng.randbytes(rng.randrange(0, 1500))
            elif kind == 1:
                # SIP-looking: a valid message cut or corrupted at random places.
                cut = bytearray(valid[: rng.randrange(1, len(valid))])
                for _ in range(rng.randrange(0, 4)):
                    cut[rng.randrange(len(cut))] = rng.randrange(256)
                junk = bytes(cut)
            elif kind == 2:
                junk = valid.replace(b"\r\n", b"\r\n" + rng.randbytes(3), 1)
            else:
                junk = b"INVITE " + b"\x00" * rng.randrange(1, 60000)
            client.send(junk)
            if i % 100 == 0:
                await asyncio.sleep(0)  # let the receiver drain its socket buffer
        client.send(options(call_id="after-flood"))
        while True:
            message, _ = await collector.next()
            if message.call_id == "after-flood":
                break
        assert layer.stats.dropped + layer.stats.rejected + layer.stats.received >= 900


# --- TCP ----------------------------------------------------------------------------------


async def tcp_client(
    address: tuple[str, int],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*address)


async def read_message(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    return head


@pytest.mark.parametrize("host", HOSTS)
@on_each_loop
async def test_tcp_two_messages_in_one_segment(host: str) -> None:
    async with started() as (layer, collector):
        _reader, writer = await tcp_client(bound(layer, "tcp", host))
        via = "SIP/2.0/TCP 192.0.2.10:5070;branch=z9hG4bK-t1;rport"
        writer.write(options(via, call_id="one", body=b"v=0\r\n") + options(via, call_id="two"))
        first, peer1 = await collector.next()
        second, peer2 = await collector.next()
        assert (first.call_id, second.call_id) == ("one", "two")
        assert first.body == b"v=0\r\n"
        assert peer1 == peer2
        assert peer1.transport == "tcp"
        assert peer1.connection_id is not None
        local_port = writer.get_extra_info("sockname")[1]
        assert (peer1.host, peer1.port) == (host, local_port)
        assert first.top_via.params["received"] == host
        assert first.top_via.params["rport"] == str(local_port)
        assert layer.stats.tcp_connections == 1
        writer.close()


@on_each_loop
async def test_tcp_message_split_over_many_segments() -> None:
    async with started() as (layer, collector):
        _, writer = await tcp_client(bound(layer, "tcp", "127.0.0.1"))
        data = options("SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK-t2", body=b"x" * 200)
        for start in range(0, len(data), 7):
            writer.write(data[start : start + 7])
            await writer.drain()
            await asyncio.sleep(0.001)
        message, _ = await collector.next()
        assert message.body == b"x" * 200
        writer.close()


@on_each_loop
async def test_tcp_response_goes_back_on_the_connection() -> None:
    async with started() as (layer, collector):
        reader, writer = await tcp_client(bound(layer, "tcp", "127.0.0.1"))
        writer.write(options("SIP/2.0/TCP 192.0.2.10:5070;branch=z9hG4bK-t3"))
        request, peer = await collector.next()
        assert isinstance(request, Request)
        layer.send(make_response(request, 200), peer)
        assert (await read_message(reader)).startswith(b"SIP/2.0 200 OK\r\n")
        writer.close()


@on_each_loop
async def test_tcp_response_reconnects_to_sent_by_when_connection_is_gone() -> None:
    async with started() as (layer, collector):
        remote = SipServer()
        server = await asyncio.start_server(remote.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await tcp_client(bound(layer, "tcp", "127.0.0.1"))
        writer.write(
            options(f"SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bK-t9", cseq="1 INVITE").replace(
                b"OPTIONS", b"INVITE"
            )
        )
        request, peer = await collector.next()
        assert isinstance(request, Request)
        writer.close()
        await writer.wait_closed()
        await until(lambda: layer.stats.tcp_connections == 0, within=WAIT)
        # RFC 3261 18.2.2: the request's connection is gone, so a new one goes to sent-by.
        layer.send(make_response(request, 486), peer)
        while b"SIP/2.0 486" not in remote.data:
            remote.changed.clear()
            await asyncio.wait_for(remote.changed.wait(), WAIT)
        assert remote.connections == 1
        server.close()
        for remote_writer in remote.writers:
            remote_writer.close()
        await server.wait_closed()


@on_each_loop
async def test_tcp_keepalive_ping_answered() -> None:
    async with started() as (layer, collector):
        reader, writer = await tcp_client(bound(layer, "tcp", "127.0.0.1"))
        writer.write(b"\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
        # The connection still carries SIP after a ping.
        writer.write(options("SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK-t4"))
        message, _ = await collector.next()
        assert message.call_id == "call-1@test"
        assert layer.stats.keepalives == 1
        writer.close()


@on_each_loop
async def test_tcp_malformed_request_gets_400_on_the_connection() -> None:
    async with started() as (layer, _collector):
        reader, writer = await tcp_client(bound(layer, "tcp", "127.0.0.1"))
        writer.write(options("SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK-t5", cseq="x OPTIONS"))
        assert (await read_message(reader)).startswith(b"SIP/2.0 400 ")
        assert layer.stats.rejected == 1
        writer.close()


@on_each_loop
async def test_tcp_framing_error_closes_connection() -> None:
    async with started() as (layer, _collector):
        reader, writer = await tcp_client(bound(layer, "tcp", "127.0.0.1"))
        writer.write(
            options("SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK-t6").replace(
                b"Content-Length: 0", b"Content-Length: banana"
            )
        )
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
        assert layer.stats.dropped >= 1
        writer.close()


@on_each_loop
async def test_tcp_oversized_stream_closes_connection() -> None:
    collector = Collector()
    layer = TransportLayer(collector.on_message, max_message_size=4096)
    await layer.listen_tcp("127.0.0.1", 0)
    try:
        reader, writer = await tcp_client(layer.local_addresses("tcp")[0])
        writer.write(b"OPTIONS sip:x SIP/2.0\r\nX-Junk: " + b"a" * 10000)
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
        writer.close()
    finally:
        await layer.close()


@on_each_loop
async def test_tcp_garbage_stream_never_breaks_the_listener() -> None:
    async with started() as (layer, collector):
        rng = random.Random(5626)
        address = bound(layer, "tcp", "127.0.0.1")
        for _ in range(20):
            _, writer = await tcp_client(address)
            writer.write(rng.randbytes(rng.randrange(1, 5000)) + b"\r\n\r\n")
            writer.close()
        _, writer = await tcp_client(address)
        writer.write(options("SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK-t7", call_id="after"))
        while True:
            message, _ = await collector.next()
            if message.call_id == "after":
                break
        writer.close()


@on_each_loop
async def test_tcp_idle_connection_closed() -> None:
    async with started() as (layer, _collector):
        reader, writer = await tcp_client(bound(layer, "tcp", "127.0.0.1"))
        # Traffic keeps it open past one timeout...
        for _ in range(4):
            await asyncio.sleep(0.1)
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
        # ...silence closes it.
        assert await asyncio.wait_for(reader.read(), WAIT) == b""
        assert layer.stats.tcp_idle_closed == 1
        await until(lambda: layer.stats.tcp_connections == 0, within=WAIT)
        writer.close()


@on_each_loop
async def test_tcp_connection_limit() -> None:
    collector = Collector()
    layer = TransportLayer(collector.on_message, max_tcp_connections=1)
    await layer.listen_tcp("127.0.0.1", 0)
    try:
        address = layer.local_addresses("tcp")[0]
        _, first = await tcp_client(address)
        first.write(options("SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK-t8"))
        await collector.next()
        second_reader, second = await tcp_client(address)
        assert await asyncio.wait_for(second_reader.read(), WAIT) == b""
        assert layer.stats.tcp_refused == 1
        first.close()
        second.close()
    finally:
        await layer.close()


class SipServer:
    """A plain asyncio TCP server standing in for a remote SIP peer."""

    def __init__(self) -> None:
        self.connections = 0
        self.data = bytearray()
        self.writers: list[asyncio.StreamWriter] = []
        self.changed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        while chunk := await reader.read(65536):
            self.data += chunk
            self.changed.set()

    async def wait_for(self, count: int) -> None:
        while self.data.count(b"OPTIONS sip:") < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), WAIT)


@pytest.mark.parametrize("host", HOSTS)
@on_each_loop
async def test_tcp_connection_reused_per_peer(host: str) -> None:
    async with started() as (layer, collector):
        remote = SipServer()
        server = await asyncio.start_server(remote.handle, host, 0)
        port = server.sockets[0].getsockname()[1]
        peer = Peer("tcp", host, port)
        first = parse_message(options("SIP/2.0/TCP pbx.invalid;branch=z9hG4bK-c1"))
        # Two sends while the connection is still being set up, one after: one connection.
        layer.send(first, peer)
        layer.send(first, peer)
        await remote.wait_for(2)
        layer.send(first, peer)
        await remote.wait_for(3)
        assert remote.connections == 1
        assert layer.stats.sent == 3
        # A request from the remote on that connection comes up with the same connection id.
        remote.writers[0].write(options("SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK-c2"))
        _, incoming = await collector.next()
        assert incoming.transport == "tcp"
        assert incoming.connection_id is not None
        layer.send(first, incoming)
        await remote.wait_for(4)
        assert remote.connections == 1
        server.close()
        for writer in remote.writers:
            writer.close()
        await server.wait_closed()


@on_each_loop
async def test_tcp_send_to_closed_port_reports_error() -> None:
    async with started() as (layer, collector):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # bound but not listening: connections are refused
            request = parse_message(options("SIP/2.0/TCP pbx.invalid;branch=z9hG4bK-e1"))
            peer = Peer("tcp", "127.0.0.1", port)
            layer.send(request, peer)
            layer.send(request, peer)
            for _ in range(2):
                message, failed_peer, exc = await asyncio.wait_for(collector.errors.get(), WAIT)
                assert message is request
                assert failed_peer == peer
                assert isinstance(exc, OSError)
        assert layer.stats.send_errors == 2
        assert layer.stats.tcp_connections == 0


@on_each_loop
async def test_send_errors_for_unknown_transport_and_missing_family() -> None:
    collector = Collector()
    layer = TransportLayer(collector.on_message, on_send_error=collector.on_send_error)
    await layer.listen_udp("127.0.0.1", 0)
    try:
        request = parse_message(options())
        layer.send(request, Peer("sctp", "127.0.0.1", 5060))
        layer.send(request, Peer("udp", "::1", 5060))
        for _ in range(2):
            _, _, exc = await asyncio.wait_for(collector.errors.get(), WAIT)
            assert isinstance(exc, (ValueError, OSError))
    finally:
        await layer.close()


@on_each_loop
async def test_udp_send_resolves_host_names() -> None:
    async with started() as (layer, _collector):
        client = await udp_client(bound(layer, "udp", "127.0.0.1"))
        request = parse_message(options())
        layer.send(request, Peer("udp", "localhost", client.port))
        assert (await client.recv()).startswith(b"OPTIONS sip:pbx@example.com SIP/2.0\r\n")


# --- addresses ----------------------------------------------------------------------------


@on_each_loop
async def test_sent_by() -> None:
    collector = Collector()
    layer = TransportLayer(collector.on_message)
    with pytest.raises(LookupError):
        layer.sent_by("udp")
    await layer.listen_udp("127.0.0.1", 0)
    await layer.listen_tcp("127.0.0.1", 0)
    try:
        udp = layer.local_addresses("udp")[0]
        assert layer.sent_by("udp") == udp
        assert layer.sent_by("tcp") == layer.local_addresses("tcp")[0]
        layer.public_address = ("203.0.113.5", None)
        assert layer.sent_by("udp") == ("203.0.113.5", udp[1])
        layer.public_address = ("203.0.113.5", 5080)
        assert layer.sent_by("tcp") == ("203.0.113.5", 5080)
    finally:
        await layer.close()


@on_each_loop
async def test_wildcard_bind_advertises_a_real_address() -> None:
    collector = Collector()
    layer = TransportLayer(collector.on_message)
    await layer.listen_udp("0.0.0.0", 0)
    try:
        host, port = layer.sent_by("udp")
        assert host != "0.0.0.0"
        assert port == layer.local_addresses("udp")[0][1]
    finally:
        await layer.close()


@on_each_loop
async def test_same_port_for_udp_and_tcp() -> None:
    collector = Collector()
    layer = TransportLayer(collector.on_message)
    # Not port 0: an ephemeral UDP port may be held on TCP by some outgoing connection.
    port = free_port()
    await layer.listen_udp("127.0.0.1", port)
    try:
        await layer.listen_tcp("127.0.0.1", port)
        assert layer.local_addresses("tcp") == [("127.0.0.1", port)]
    finally:
        await layer.close()
