"""The transport layer's WebSocket flows (RFC 7118), fed as the HTTP server's adapter feeds
them: whole messages in, whole messages out. The WebSocket itself is exercised end to end
in tests/e2e/test_sip_websocket.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nuage.sip.message import Request, Response, make_response
from nuage.sip.parser import MessageRejected, parse_message
from nuage.sip.peer import Peer
from nuage.sip.transport import TransportLayer
from nuage.sip.websocket import WebSocketFlow

from .test_transport import WAIT, Collector, options

pytestmark = pytest.mark.timeout(30)

BROWSER = ("192.0.2.7", 51000)
HTTP = ("127.0.0.1", 8080)
VIA = "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK-ws1"


class Connection:
    """The adapter's side of one WebSocket: what the flow wrote, and whether it closed it."""

    def __init__(self, accepts: int = 100) -> None:
        self.written: list[bytes] = []
        self.closed = False
        # How many messages it takes before it behaves as a client that stopped reading.
        self._accepts = accepts

    def write(self, data: bytes) -> bool:
        if self._accepts == 0:
            return False
        self._accepts -= 1
        self.written.append(data)
        return True

    def close(self) -> None:
        self.closed = True


class LostFlows:
    def __init__(self) -> None:
        self.peers: list[Peer] = []

    def __call__(self, peer: Peer) -> None:
        self.peers.append(peer)


@contextlib.asynccontextmanager
async def layer_with(
    lost: LostFlows | None = None, **options: Any
) -> AsyncIterator[tuple[TransportLayer, Collector]]:
    collector = Collector()
    layer = TransportLayer(
        collector.on_message, on_send_error=collector.on_send_error, on_flow_lost=lost, **options
    )
    try:
        yield layer, collector
    finally:
        await layer.close()


def open_flow(
    layer: TransportLayer,
    connection: Connection,
    remote: tuple[str, int] = BROWSER,
    scheme: str = "ws",
) -> WebSocketFlow:
    flow = layer.open_websocket(scheme, remote, HTTP, connection.write, connection.close)
    assert flow is not None
    return flow


async def test_a_request_is_stamped_and_its_response_goes_back_on_the_connection() -> None:
    async with layer_with() as (layer, collector):
        connection = Connection()
        flow = open_flow(layer, connection, scheme="wss")
        flow.receive(options(VIA))
        request, peer = await collector.next()
        assert isinstance(request, Request)
        assert peer == Peer("wss", *BROWSER, flow.id)
        assert request.top_via.params["received"] == BROWSER[0]
        layer.send(make_response(request, 200), peer)
        [sent] = connection.written
        response = parse_message(sent)
        assert isinstance(response, Response) and response.status == 200
        assert layer.stats.ws_connections == 1 and layer.stats.sent == 1


async def test_requests_to_the_peer_go_over_its_connection_and_sent_by_is_the_http_address() -> (
    None
):
    async with layer_with() as (layer, _collector):
        with pytest.raises(LookupError):
            layer.sent_by("ws")
        connection = Connection()
        flow = open_flow(layer, connection)
        assert layer.sent_by("ws") == HTTP
        layer.send(parse_message(options()), flow.peer)
        # Known by its address alone, as a stored binding would know it.
        layer.send(parse_message(options()), Peer("ws", *BROWSER))
        assert len(connection.written) == 2


async def test_content_length_must_match_the_message() -> None:
    async with layer_with() as (layer, collector):
        connection = Connection()
        flow = open_flow(layer, connection)
        flow.receive(options(VIA, body=b"v=0\r\n") + b"trailing")
        [sent] = connection.written
        response = parse_message(sent)
        assert isinstance(response, Response) and response.status == 400
        assert collector.messages.empty() and layer.stats.rejected == 1
        # Without Content-Length the body is the rest of the message.
        flow.receive(options(VIA).replace(b"Content-Length: 0\r\n", b"") + b"v=0\r\n")
        request, _ = await collector.next()
        assert request.body == b"v=0\r\n"


async def test_oversized_and_malformed_messages_never_break_the_flow() -> None:
    async with layer_with(max_message_size=2000) as (layer, collector):
        connection = Connection()
        flow = open_flow(layer, connection)
        flow.receive(options(VIA, body=b"x" * 3000))
        flow.receive(b"\x00\xff garbage that is no SIP at all")
        flow.receive(b"")
        flow.receive(options(VIA, cseq="1 INVITE"))
        statuses = [parse_message(data) for data in connection.written]
        assert [s.status for s in statuses if isinstance(s, Response)] == [413, 400]
        assert layer.stats.dropped == 2
        flow.receive(options(VIA))
        request, _ = await collector.next()
        assert isinstance(request, Request) and request.method == "OPTIONS"


async def test_keepalives() -> None:
    async with layer_with() as (layer, _collector):
        connection = Connection()
        flow = open_flow(layer, connection)
        flow.receive(b"\r\n\r\n")
        flow.receive(b"\r\n")
        assert connection.written == [b"\r\n"]
        assert layer.stats.keepalives == 2


async def test_a_lost_connection_cannot_be_sent_to_and_is_reported() -> None:
    lost = LostFlows()
    async with layer_with(lost) as (layer, collector):
        first = Connection()
        flow = open_flow(layer, first)
        flow.connection_lost()
        flow.connection_lost()  # told twice: counted once
        assert layer.stats.ws_connections == 0
        # The same address connects again: the old peer must not reach the new connection.
        second = Connection()
        open_flow(layer, second)
        request = parse_message(options())
        layer.send(request, flow.peer)
        message, peer, exc = await asyncio.wait_for(collector.errors.get(), WAIT)
        assert message is request and peer == flow.peer
        assert isinstance(exc, ConnectionResetError)
        assert second.written == [] and first.written == []
        assert lost.peers == [flow.peer]


async def test_a_client_that_does_not_read_is_closed() -> None:
    async with layer_with() as (layer, collector):
        connection = Connection(accepts=1)
        flow = open_flow(layer, connection)
        layer.send(parse_message(options()), flow.peer)
        layer.send(parse_message(options()), flow.peer)
        _, _, exc = await asyncio.wait_for(collector.errors.get(), WAIT)
        assert isinstance(exc, ConnectionResetError)
        assert connection.closed and flow.closed


async def test_connection_limit_and_shutdown() -> None:
    async with layer_with(max_tcp_connections=1) as (layer, _collector):
        connection = Connection()
        open_flow(layer, connection)
        refused = layer.open_websocket(
            "ws", ("192.0.2.8", 1), HTTP, Connection().write, Connection().close
        )
        assert refused is None and layer.stats.tcp_refused == 1
        await layer.close()
        assert connection.closed
        late = layer.open_websocket(
            "ws", ("192.0.2.9", 1), HTTP, Connection().write, Connection().close
        )
        assert late is None


def test_whole_message_parsing() -> None:
    message = options(body=b"abc")
    assert parse_message(message + b"xyz").body == b"abc"
    assert parse_message(message, whole=True).body == b"abc"
    with pytest.raises(MessageRejected) as rejected:
        parse_message(message + b"xyz", whole=True)
    assert rejected.value.status == 400 and rejected.value.request is not None
