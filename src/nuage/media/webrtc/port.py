"""A relay side's RTP socket turned into a WebRTC media port: STUN connectivity checks
(ice_lite.py), the DTLS handshake (dtls.py), then SRTP and SRTCP, all on the one port
(RFC 7983's demultiplexing by first byte; RTCP multiplexed with RTP, RFC 5761).

The relay itself does not change: the side's RTP and RTCP channels (relay.py) receive
the unprotected packets, as if they had come from a plain RTP peer, and what they send
goes through ``_Protected``, which encrypts it and sends it out of this port to the
address the browser nominated. Until the keys exist, nothing is sent or relayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pylibsrtp

from nuage.media.webrtc.dtls import DtlsSrtp, is_dtls
from nuage.media.webrtc.ice_lite import IceLiteResponder, is_stun

if TYPE_CHECKING:
    from nuage.media.relay import _Channel

log = logging.getLogger(__name__)

SocketAddress = tuple[Any, ...]


class _Protected:
    """Stands as a channel's transport: SRTP-protects each packet, then sends it out of
    the WebRTC port. ``own`` is the channel's own transport (closed with the side)."""

    __slots__ = ("_own", "_port", "_rtcp")

    def __init__(self, port: WebRtcPort, own: asyncio.DatagramTransport, *, rtcp: bool) -> None:
        self._port = port
        self._own = own
        self._rtcp = rtcp

    def sendto(self, data: bytes, address: SocketAddress) -> None:
        self._port.send_media(data, address, rtcp=self._rtcp)

    def close(self) -> None:
        if not self._rtcp:
            self._port.close()
        self._own.close()


class WebRtcPort(asyncio.DatagramProtocol):
    """Takes over a relay side's RTP socket (``transport``) for a WebRTC party."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        rtp: _Channel,
        rtcp: _Channel,
        ice: IceLiteResponder,
        dtls: DtlsSrtp,
        *,
        on_failure: Callable[[str], None],
    ) -> None:
        self._transport = transport
        self._rtp = rtp
        self._rtcp = rtcp
        self.ice = ice
        self.dtls = dtls
        self._on_failure = on_failure
        self._dtls_peer: SocketAddress | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.dropped = 0
        self._rtcp_transport = rtcp.transport
        transport.set_protocol(self)
        rtp.transport = _Protected(self, transport, rtcp=False)  # type: ignore[assignment]
        rtcp.transport = _Protected(self, rtcp.transport, rtcp=True)  # type: ignore[assignment]

    # -- receiving -------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: SocketAddress) -> None:
        if not data:
            return
        first = data[0]
        if 128 <= first <= 191:
            self._media(data, addr)
        elif is_stun(data):
            self._check(data, addr)
        elif is_dtls(data):
            self._handshake(data, addr)
        else:
            self.dropped += 1

    def _media(self, data: bytes, addr: SocketAddress) -> None:
        keys = self.dtls.keys
        if keys is None or len(data) < 8:
            self.dropped += 1
            return
        # RFC 5761: RTCP packet types 192-223 sit where RTP's marker and payload type are.
        rtcp = 192 <= data[1] <= 223
        try:
            plain = keys.unprotect_rtcp(data) if rtcp else keys.unprotect(data)
        except pylibsrtp.Error:
            self.dropped += 1
            return
        (self._rtcp if rtcp else self._rtp).datagram_received(plain, addr)

    def _check(self, data: bytes, addr: SocketAddress) -> None:
        nominated = self.ice.nominated
        response = self.ice.handle(data, (addr[0], addr[1]))
        if response is not None:
            self._transport.sendto(response, addr)
        if self.ice.nominated is not None and self.ice.nominated != nominated:
            # Media goes where the browser nominated; the relay's latch then follows its
            # packets, as for any other party.
            self._rtp.expect(addr)
            self._rtcp.expect(addr)
            if self._dtls_peer is None:
                self._dtls_peer = addr
                self._send_dtls(self.dtls.start())

    def _handshake(self, data: bytes, addr: SocketAddress) -> None:
        self._dtls_peer = addr
        established = self.dtls.established
        self._send_dtls(self.dtls.receive(data))
        if self.dtls.failure is not None and not established:
            log.warning("WebRTC leg: DTLS %s", self.dtls.failure)
            self._on_failure(self.dtls.failure)

    def _send_dtls(self, datagrams: list[bytes]) -> None:
        if self._dtls_peer is not None:
            for datagram in datagrams:
                self._transport.sendto(datagram, self._dtls_peer)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        delay = self.dtls.timeout()
        if delay is not None:
            self._timer = asyncio.get_running_loop().call_later(delay, self._retransmit)

    def _retransmit(self) -> None:
        self._timer = None
        self._send_dtls(self.dtls.on_timeout())

    # -- sending ---------------------------------------------------------------------

    def send_media(self, data: bytes, address: SocketAddress, *, rtcp: bool) -> None:
        keys = self.dtls.keys
        if keys is None:
            return
        try:
            packet = keys.protect_rtcp(data) if rtcp else keys.protect(data)
        except pylibsrtp.Error:
            self.dropped += 1
            return
        self._transport.sendto(packet, address)

    # -- lifetime --------------------------------------------------------------------

    def pause_writing(self) -> None:
        self._rtp.pause_writing()
        self._rtcp.pause_writing()

    def resume_writing(self) -> None:
        self._rtp.resume_writing()
        self._rtcp.resume_writing()

    def close(self) -> None:
        """Say goodbye to the peer's DTLS (close_notify) before the socket closes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._dtls_peer is not None:
            for datagram in self.dtls.close():
                self._transport.sendto(datagram, self._dtls_peer)

    def release(self) -> None:
        """Give the socket back to the side's plain channels: another party, a plain RTP
        one, takes this side (a transfer). The browser's DTLS is closed first."""
        self.close()
        self._transport.set_protocol(self._rtp)
        self._rtp.transport = self._transport
        self._rtcp.transport = self._rtcp_transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._rtp.connection_lost(exc)
