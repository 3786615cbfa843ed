"""SipEndpoint over real sockets on 127.0.0.1: two endpoints talking, a lossy UDP relay, sipp."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest

from nuage.sip.dialog import Dialog
from nuage.sip.endpoint import ServerTransactionHandle, SipEndpoint, new_tag
from nuage.sip.message import URI, Headers, Request, Response
from nuage.sip.parser import parse_message
from nuage.sip.peer import Peer
from nuage.sip.transaction import TimerConfig, TransactionManager
from peers.ports import free_ports

HOST = "127.0.0.1"
FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5, trying_delay=0.2)
_calls = itertools.count(1)


class Uas:
    """A small UAS TU: INVITE -> 180, then 200 (or waits for CANCEL -> 487); BYE -> 200."""

    def __init__(self, *, ring_until_cancel: bool = False) -> None:
        self.ring_until_cancel = ring_until_cancel
        self.requests: list[Request] = []
        self.acks: list[Request | None] = []
        self.cancelled = False

    async def __call__(self, tx: ServerTransactionHandle) -> None:
        self.requests.append(tx.request)
        if tx.request.method != "INVITE":
            tx.respond(200)
            return
        tx.respond(180)
        if self.ring_until_cancel:
            await tx.cancelled.wait()
            self.cancelled = True
            tx.respond(487)
            return
        tx.respond(200, headers=[("Contact", f"<sip:uas@{HOST}>")])
        self.acks.append(await tx.wait_ack())


async def endpoint(
    on_request: Callable[[ServerTransactionHandle], Awaitable[None]],
    timers: TimerConfig = FAST,
    **options: object,
) -> SipEndpoint:
    sip = SipEndpoint(on_request, timers=timers, **options)  # type: ignore[arg-type]
    await sip.listen_udp(HOST, 0)
    await sip.listen_tcp(HOST, 0)
    return sip


def peer_of(sip: SipEndpoint, transport: str) -> Peer:
    host, port = sip.transport.sent_by(transport)
    return Peer(transport, host, port)


def invite_for(target: Peer, contact: Peer, method: str = "INVITE") -> Request:
    headers = Headers()
    headers.add("From", f"<sip:alice@{HOST}>;tag={new_tag()}")
    headers.add("To", f"<sip:bob@{target.host}>")
    headers.add("Call-ID", f"call-{next(_calls)}@{HOST}")
    headers.add("CSeq", f"1 {method}")
    headers.add(
        "Contact", f"<sip:alice@{contact.host}:{contact.port};transport={contact.transport}>"
    )
    return Request(method, URI(user="bob", host=target.host, port=target.port), headers)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SipEndpoint, SipEndpoint, Uas]]:
    uas_tu = Uas()
    uas = await endpoint(uas_tu)
    uac = await endpoint(_refuse)
    yield uac, uas, uas_tu
    await uac.close()
    await uas.close()


async def _refuse(tx: ServerTransactionHandle) -> None:
    tx.respond(403)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_call_invite_ringing_ok_ack_bye(
    pair: tuple[SipEndpoint, SipEndpoint, Uas], transport: str
) -> None:
    uac, uas, uas_tu = pair
    target = peer_of(uas, transport)
    invite = invite_for(target, peer_of(uac, transport))
    tx = await uac.request(invite, target)
    statuses = [response.status async for response in tx]
    assert statuses[-2:] == [180, 200]
    ok = await tx.final()
    assert ok.to.tag

    dialog = Dialog.from_uac(invite, ok, peer=target)
    uac.send_ack(dialog.create_ack(invite.cseq.seq), target)
    bye = await uac.request(dialog.create_request("BYE"), target)
    assert (await bye.final()).status == 200
    await _until(lambda: len(uas_tu.acks) == 1)
    ack = uas_tu.acks[0]
    assert ack is not None and ack.method == "ACK"
    assert [r.method for r in uas_tu.requests] == ["INVITE", "BYE"]
    # Both sides agree on the dialog.
    uas_dialog = Dialog.from_uas(uas_tu.requests[0], ok)
    assert uas_dialog.id == (dialog.call_id, dialog.remote_tag, dialog.local_tag)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_cancel_of_ringing_invite(transport: str) -> None:
    uas_tu = Uas(ring_until_cancel=True)
    uas = await endpoint(uas_tu)
    uac = await endpoint(_refuse)
    try:
        target = peer_of(uas, transport)
        tx = await uac.request(invite_for(target, peer_of(uac, transport)), target)
        tx.cancel()  # before any provisional: sent when the 180 arrives
        assert tx.cancel_handle is None
        final = await tx.final()
        assert final.status == 487
        assert tx.cancel_handle is not None
        assert (await tx.cancel_handle.final()).status == 200
        assert uas_tu.cancelled
    finally:
        await uac.close()
        await uas.close()


async def test_a_waiter_giving_up_does_not_take_the_final_from_the_others() -> None:
    uas_tu = Uas(ring_until_cancel=True)
    uas = await endpoint(uas_tu)
    uac = await endpoint(_refuse)
    try:
        target = peer_of(uas, "udp")
        tx = await uac.request(invite_for(target, peer_of(uac, "udp")), target)
        other = asyncio.ensure_future(tx.final())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(tx.final(), 0.1)
        assert not tx.done
        tx.cancel()
        assert (await other).status == 487
        assert (await tx.final()).status == 487
    finally:
        await uac.close()
        await uas.close()


async def test_cancel_without_matching_invite_gets_481(
    pair: tuple[SipEndpoint, SipEndpoint, Uas],
) -> None:
    uac, uas, _ = pair
    target = peer_of(uas, "udp")
    cancel = invite_for(target, peer_of(uac, "udp"), "CANCEL")
    assert (await (await uac.request(cancel, target)).final()).status == 481


class LossyRelay(asyncio.DatagramProtocol):
    """A real UDP relay between one client and one server that drops the first datagram."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.client: tuple[str, int] | None = None
        self.from_client = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self.transport is not None
        source = (str(addr[0]), int(addr[1]))
        if source == self.server:
            if self.client is not None:
                self.transport.sendto(data, self.client)
            return
        self.client = source
        self.from_client += 1
        if self.from_client > 1:
            self.transport.sendto(data, self.server)


async def test_udp_loss_is_repaired_by_timer_a(
    pair: tuple[SipEndpoint, SipEndpoint, Uas],
) -> None:
    uac, uas, uas_tu = pair
    loop = asyncio.get_running_loop()
    relay = LossyRelay(uas.transport.sent_by("udp"))
    transport, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=(HOST, 0))
    try:
        relay_port = transport.get_extra_info("sockname")[1]
        target = Peer("udp", HOST, relay_port)
        invite = invite_for(target, peer_of(uac, "udp"))
        tx = await uac.request(invite, target)
        assert (await tx.final()).status == 200
        assert relay.from_client >= 2  # the INVITE went out again after T1
        assert [r.method for r in uas_tu.requests] == ["INVITE"]  # delivered once
    finally:
        transport.close()


async def test_408_when_the_far_end_never_answers() -> None:
    uac = await endpoint(_refuse)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((HOST, 0))
    silent.setblocking(False)
    try:
        target = Peer("udp", HOST, silent.getsockname()[1])
        started = asyncio.get_running_loop().time()
        tx = await uac.request(invite_for(target, peer_of(uac, "udp")), target)
        final = await tx.final()
        elapsed = asyncio.get_running_loop().time() - started
        assert final.status == 408
        assert 64 * FAST.t1 - 0.05 <= elapsed < 64 * FAST.t1 + 1.0
        received = 0
        while True:
            try:
                silent.recv(65536)
            except BlockingIOError:
                break
            received += 1
        # Timer A: the INVITE at 0, then at 0.05, 0.15, 0.35, 0.75, 1.55, 3.15 s. On a
        # loaded machine each late timer delays the next: the last one, 50 ms before
        # Timer B, may come too late to go.
        assert received in (6, 7)
        assert uac.transaction_count == 0
    finally:
        silent.close()
        await uac.close()


async def test_503_when_tcp_connect_fails() -> None:
    uac = await endpoint(_refuse)
    try:
        port = free_ports(1)
        target = Peer("tcp", HOST, port)
        options = invite_for(target, peer_of(uac, "tcp"), "OPTIONS")
        assert (await (await uac.request(options, target)).final()).status == 503
    finally:
        await uac.close()


async def test_failing_tu_is_answered_500_and_endpoint_survives() -> None:
    calls = 0

    async def broken(tx: ServerTransactionHandle) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("TU bug")

    uas = await endpoint(broken)
    uac = await endpoint(_refuse)
    try:
        target = peer_of(uas, "udp")
        for _ in range(2):
            options = invite_for(target, peer_of(uac, "udp"), "OPTIONS")
            assert (await (await uac.request(options, target)).final()).status == 500
        assert calls == 2
    finally:
        await uac.close()
        await uas.close()


async def test_unacked_2xx_is_retransmitted_then_ack_timeout() -> None:
    waited: list[Request | None] = []

    async def answer(tx: ServerTransactionHandle) -> None:
        tx.respond(200, headers=[("Contact", f"<sip:uas@{HOST}>")])
        waited.append(await tx.wait_ack())

    strays: list[Response] = []
    uas = await endpoint(answer)
    uac = await endpoint(_refuse, on_stray_2xx=lambda response, peer: strays.append(response))
    try:
        target = peer_of(uas, "udp")
        invite = invite_for(target, peer_of(uac, "udp"))
        tx = await uac.request(invite, target)
        ok = await tx.final()
        assert ok.status == 200
        await _until(lambda: bool(waited), within=64 * FAST.t1 + 2)
        assert waited == [None]
        # The UAC's TU saw the retransmitted 2xx it never ACKed.
        assert len(strays) >= 3 and all(s.status == 200 for s in strays)
    finally:
        await uac.close()
        await uas.close()


async def test_ack_answers_retransmitted_2xx_without_bothering_the_tu() -> None:
    first_ok_sent = asyncio.Event()

    async def answer(tx: ServerTransactionHandle) -> None:
        tx.respond(200, headers=[("Contact", f"<sip:uas@{HOST}>")])
        first_ok_sent.set()
        await tx.wait_ack()

    strays: list[Response] = []
    acks: list[Request] = []
    uas = await endpoint(answer, on_ack=lambda request, peer: acks.append(request))
    uac = await endpoint(_refuse, on_stray_2xx=lambda response, peer: strays.append(response))
    try:
        target = peer_of(uas, "udp")
        invite = invite_for(target, peer_of(uac, "udp"))
        ok = await (await uac.request(invite, target)).final()
        dialog = Dialog.from_uac(invite, ok, peer=target)
        uac.send_ack(dialog.create_ack(invite.cseq.seq), target)
        await _until(lambda: bool(acks))
        await asyncio.sleep(4 * FAST.t1)
        assert strays == []
        assert len(acks) == 1
    finally:
        await uac.close()
        await uas.close()


async def test_handles_are_let_go_at_their_final_and_ack(
    pair: tuple[SipEndpoint, SipEndpoint, Uas],
) -> None:
    """What absorbs retransmissions after a call's set-up lives on 32 s (Timer L); the
    handles and transactions (a call's messages and queues) must not, and a CANCEL that
    crosses the 2xx still gets the INVITE's To tag."""
    uac, uas, uas_tu = pair
    target = peer_of(uas, "udp")
    invite = invite_for(target, peer_of(uac, "udp"))
    tx = await uac.request(invite, target)
    ok = await tx.final()
    assert uac._clients == {} and len(uac._manager) == 0
    dialog = Dialog.from_uac(invite, ok, peer=target)
    uac.send_ack(dialog.create_ack(invite.cseq.seq), target)
    await _until(lambda: len(uas_tu.acks) == 1)
    assert uas._servers == {} and len(uas._manager) == 0
    uac._cancel(tx)  # a UAC sends no CANCEL once it has the final response
    assert tx.cancel_handle is None
    # The CANCEL the UAC sent before the 2xx reached it, arriving after the ACK.
    cancel = TransactionManager().cancel_request(invite)
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind((HOST, 0))
        await loop.sock_sendto(sock, bytes(cancel), (target.host, target.port))
        async with asyncio.timeout(5):
            answer = parse_message(await loop.sock_recv(sock, 65535))
    assert isinstance(answer, Response)
    assert (answer.status, answer.cseq.method, answer.to.tag) == (200, "CANCEL", ok.to.tag)


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        # The conditions watch state that TU callbacks fill in; polling keeps the TUs plain.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.mark.peers
async def test_sipp_uac_makes_five_calls(tmp_path: Path) -> None:
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp (Debian package sip-tester) is required"
    uas_tu = Uas()
    uas = SipEndpoint(uas_tu)
    await uas.listen_udp(HOST, 0)
    try:
        port = uas.transport.sent_by("udp")[1]
        sipp_port = free_ports(1)
        media_port = free_ports(4)
        process = await asyncio.create_subprocess_exec(
            sipp,
            "-sn",
            "uac",
            f"{HOST}:{port}",
            "-i",
            HOST,
            "-m",
            "5",
            "-mp",
            str(media_port),
            "-p",
            str(sipp_port),
            "-timeout",
            "20",
            "-trace_err",
            "-nostdin",
            cwd=str(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, (stdout[-2000:], stderr[-2000:])
        assert [r.method for r in uas_tu.requests].count("INVITE") == 5
        assert [r.method for r in uas_tu.requests].count("BYE") == 5
    finally:
        await uas.close()
