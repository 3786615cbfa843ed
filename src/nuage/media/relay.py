"""The anchored RTP/RTCP relay: two sides, each with an RTP and an RTCP socket; what one
side's socket receives from its peer goes out of the other side's socket to that side's
peer. No buffering, no transcoding, no parsing beyond a header check when latching.

The receive path runs inside ``datagram_received`` and sends with ``transport.sendto``
directly: no await, no lock, no logging, no allocation beyond the datagram the loop
hands us, and statistics as plain integer counters (DESIGN.md, media/). A side can be
tapped (recording, DTMF feature codes, call quality from RTCP): its listeners get each
admitted packet; a plain relay has none and pays one attribute test per packet.

A side can also hear a sound (music on hold, a beep) or nothing instead of the other
side: the other side's packets are then dropped and the sound's own stream sent, with
its RTCP (sender reports, a BYE when it stops) out of the side's RTCP socket.

Symmetric RTP latching (RFC 4961, "comedia"), per socket:

- ``set_remote`` (from SDP) sets where to send and opens the latch.
- While open, the first packet that looks like RTP (or RTCP on the RTCP socket) latches
  the socket to its source: packets are then sent back to that source, whatever the SDP
  said. This is what makes phones behind NAT work.
- Once latched, packets from any other source are dropped, so a stray or injected
  stream cannot take over a call ("RTP bleed"). The latch moves to a new source only
  after ``RELATCH_AFTER`` consecutive valid packets from that one source with none from
  the latched source in between: a peer whose NAT binding changed, or a phone that
  moved, takes over within a few packet times, while a peer that is still talking keeps
  its latch against anything slower than itself.
- A new ``set_remote`` (a re-INVITE) reopens the latch.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from nuage.media.player import FrameClock, Playback, Sound
from nuage.media.ports import PortPair
from nuage.media.sdp import RtpMap
from nuage.media.webrtc.dtls import DtlsSrtp
from nuage.media.webrtc.ice_lite import IceLiteResponder
from nuage.media.webrtc.port import WebRtcPort

if TYPE_CHECKING:
    from nuage.media.engine import MediaSession, MediaSide

# The same few addresses (ours and the peers') come back on every call set-up, and
# ipaddress parses slowly; its address objects are immutable, so they can be shared.
_ip_address = functools.lru_cache(maxsize=1024)(ipaddress.ip_address)

RELATCH_AFTER = 8
"""Consecutive packets from one new source that move a latch (160 ms of 20 ms audio)."""

_RTP_HEADER = 12
_RTCP_HEADER = 8

SocketAddress = tuple[Any, ...]
"""A socket address as the loop reports it: (host, port) or (host, port, flow, scope)."""


@dataclass(frozen=True, slots=True)
class Counters:
    """A snapshot of one socket's traffic. ``packets_in``/``bytes_in`` count what it
    received, ``packets_out``/``bytes_out`` what it sent to its peer, ``dropped`` the
    received packets not forwarded (no destination known yet, a source other than the
    latched one, or the outgoing socket's buffer full)."""

    packets_in: int
    bytes_in: int
    packets_out: int
    bytes_out: int
    dropped: int


class _Channel(asyncio.DatagramProtocol):
    """One socket of one side (its RTP or its RTCP socket), paired with the socket of the
    same kind on the other side."""

    __slots__ = (
        "blocked",
        "bytes_in",
        "bytes_out",
        "candidate",
        "closed",
        "dropped",
        "last_seq",
        "listeners",
        "min_size",
        "packets_in",
        "packets_out",
        "paused",
        "peer",
        "relaying",
        "remote",
        "renumbers",
        "seq_shift",
        "source",
        "source_ssrc",
        "strays",
        "tap",
        "transport",
    )

    transport: asyncio.DatagramTransport
    peer: _Channel

    def __init__(self, loop: asyncio.AbstractEventLoop, min_size: int) -> None:
        self.min_size = min_size
        self.remote: SocketAddress | None = None
        self.source: SocketAddress | None = None
        self.candidate: SocketAddress | None = None
        self.strays = 0
        self.paused = False
        # Whether what the peer channel receives is sent out here (off while this side
        # hears a sound or nothing); ``blocked`` folds it with ``paused`` for the hot path.
        self.relaying = True
        self.blocked = False
        # Sees every admitted packet when set (recording, DTMF): None on plain relays.
        self.tap: Callable[[bytes], object] | None = None
        self.listeners: list[Callable[[bytes], object]] = []
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.dropped = 0
        # What this channel sends its party is one RTP sequence, whichever source it comes
        # from (the other party, then another after a transfer, music, the mixer): phones
        # and browsers (SRTP's replay window) drop packets numbered behind what they had.
        self.renumbers = min_size == _RTP_HEADER
        self.source_ssrc = b""
        self.seq_shift = 0
        self.last_seq = -1
        self.closed: asyncio.Future[None] = loop.create_future()

    def itself(self) -> _Channel:
        """The protocol factory handing the loop this already-wired channel."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Neither asyncio's nor uvloop's UDP transport subclasses DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        # The transport would queue without bound once the kernel buffer is full; a late
        # media packet is worthless, so drop instead, as the network would.
        self.paused = True
        self.blocked = True

    def resume_writing(self) -> None:
        self.paused = False
        self.blocked = not self.relaying

    def set_relaying(self, relaying: bool) -> None:
        self.relaying = relaying
        self.blocked = self.paused or not relaying

    def add_listener(self, listener: Callable[[bytes], object]) -> None:
        self.listeners.append(listener)
        self._retap()

    def remove_listener(self, listener: Callable[[bytes], object]) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        self._retap()

    def clear_listeners(self) -> None:
        self.listeners.clear()
        self._retap()

    def trade_listeners(self, other: _Channel) -> None:
        """Take ``other``'s listeners and give it ours."""
        self.listeners, other.listeners = other.listeners, self.listeners
        self._retap()
        other._retap()

    def _retap(self) -> None:
        # The hot path calls ``tap`` only: the one listener itself when there is one.
        listeners = self.listeners
        if len(listeners) > 1:
            self.tap = self._dispatch
        else:
            self.tap = listeners[0] if listeners else None

    def _dispatch(self, data: bytes) -> None:
        for listener in self.listeners:
            listener(data)

    def continued(self, packet: bytes) -> bytes:
        """``packet`` numbered after the last one sent here: a new source (a new SSRC)
        continues the sequence where the previous one left it."""
        if len(packet) < _RTP_HEADER or packet[0] >> 6 != 2 or 192 <= packet[1] <= 223:
            # Not RTP, or RTCP multiplexed on the RTP port (RFC 5761): passed as it is.
            return packet
        ssrc = packet[8:12]
        seq = (packet[2] << 8) | packet[3]
        if ssrc != self.source_ssrc:
            self.source_ssrc = ssrc
            self.seq_shift = 0 if self.last_seq < 0 else (self.last_seq + 1 - seq) & 0xFFFF
        if self.seq_shift:
            seq = (seq + self.seq_shift) & 0xFFFF
            packet = b"".join((packet[:2], seq.to_bytes(2, "big"), packet[4:]))
        self.last_seq = seq
        return packet

    def send_own(self, packet: bytes) -> None:
        """Send a packet the server made (a sound) to this channel's party."""
        remote = self.remote
        if remote is None or self.paused or not hasattr(self, "transport"):
            return
        if self.renumbers:
            packet = self.continued(packet)
        self.transport.sendto(packet, remote)
        self.packets_out += 1
        self.bytes_out += len(packet)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.packets_in += 1
        self.bytes_in += len(data)
        if addr != self.source:
            if not self._admit(data, addr):
                self.dropped += 1
                return
        elif self.strays:
            self.strays = 0
        tap = self.tap
        if tap is not None:
            tap(data)
        peer = self.peer
        remote = peer.remote
        if remote is None or peer.blocked:
            self.dropped += 1
            return
        if peer.renumbers:
            data = peer.continued(data)
        peer.transport.sendto(data, remote)
        peer.packets_out += 1
        peer.bytes_out += len(data)

    def _admit(self, data: bytes, addr: SocketAddress) -> bool:
        """Whether a packet from a source other than the latched one may pass; latches or
        re-latches when the rule in the module docstring says so."""
        if len(data) < self.min_size or data[0] >> 6 != 2:
            return False
        if self.source is not None:
            if addr == self.candidate:
                self.strays += 1
            else:
                self.candidate = addr
                self.strays = 1
            if self.strays < RELATCH_AFTER:
                return False
        self.source = self.remote = addr
        self.candidate = None
        self.strays = 0
        return True

    def expect(self, remote: SocketAddress | None) -> None:
        self.remote = remote
        self.source = None
        self.candidate = None
        self.strays = 0

    def unlink(self) -> None:
        """Closed for good: drop the references to the peer channel and the transport."""
        self.listeners.clear()
        self.tap = None
        for name in ("peer", "transport"):
            if hasattr(self, name):
                delattr(self, name)

    def counters(self) -> Counters:
        return Counters(
            self.packets_in, self.bytes_in, self.packets_out, self.bytes_out, self.dropped
        )


class RelaySide:
    """One party's end of a relay session: the ports advertised to it in SDP."""

    def __init__(
        self,
        pair: PortPair,
        local_address: str,
        rtp: _Channel,
        rtcp: _Channel,
        clock: FrameClock,
    ) -> None:
        self.pair = pair
        self.local_address = local_address
        self._family = pair.rtp_socket.family
        self._rtp = rtp
        self._rtcp = rtcp
        self._clock = clock
        self._playback: Playback | None = None
        self._served = False
        self._webrtc: WebRtcPort | None = None

    @property
    def hears(self) -> str:
        """What this side's party hears: "peer" (the relay), "sound", "server" (a stream
        the server makes, such as a conference's mix) or "nothing"."""
        if self._playback is not None:
            return "sound"
        if self._served:
            return "server"
        return "peer" if self._rtp.relaying else "nothing"

    def relay(self) -> None:
        """Hear the other side again (the default)."""
        self._stop_playback()
        self._served = False
        self._rtp.set_relaying(True)
        self._rtcp.set_relaying(True)

    def play(
        self,
        sound: Sound,
        codec: RtpMap,
        *,
        loop: bool = True,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Hear ``sound`` in ``codec`` instead of the other side: looped until ``relay`` or
        ``silence``, or once and then ``then`` is called. The party gets the stream's
        RTCP as the clock's ``reports`` say, and a BYE when it ends. Raises
        ``UnsupportedCodecError`` when the codec cannot be played."""
        playback = Playback(
            sound,
            codec.encoding,
            codec.clock_rate,
            codec.payload_type,
            self._rtp.send_own,
            loop=loop,
            then=then,
            send_rtcp=self._rtcp.send_own,
            reports=self._clock.reports,
        )
        self.silence()
        self._playback = playback
        self._clock.add(playback)

    def silence(self) -> None:
        """Hear nothing: neither the other side (its RTP and RTCP) nor a sound."""
        self._stop_playback()
        self._served = False
        self._rtp.set_relaying(False)
        self._rtcp.set_relaying(False)

    def send(self, packet: bytes) -> None:
        """Send this side's party an RTP packet the server made (telephone events), beside
        whatever it hears."""
        self._rtp.send_own(packet)

    def send_rtcp(self, packet: bytes) -> None:
        """Send this side's party an RTCP packet the server made (reports about a stream
        the server sends it), out of this side's RTCP socket."""
        self._rtcp.send_own(packet)

    def hear_server(self) -> Callable[[bytes], None]:
        """Hear only the RTP packets given to the returned function (a stream the server
        makes for this party, such as a conference's mix), until ``relay``, ``play`` or
        ``silence``."""
        self.silence()
        self._served = True
        return self._rtp.send_own

    def add_listener(self, listener: Callable[[bytes], object], *, rtcp: bool = False) -> None:
        """Give ``listener`` a copy of every RTP (or RTCP) packet this side's party sends,
        once admitted by the latch (a stray source cannot feed it)."""
        (self._rtcp if rtcp else self._rtp).add_listener(listener)

    def remove_listener(self, listener: Callable[[bytes], object], *, rtcp: bool = False) -> None:
        (self._rtcp if rtcp else self._rtp).remove_listener(listener)

    def clear_listeners(self) -> None:
        self._rtp.clear_listeners()
        self._rtcp.clear_listeners()

    def _stop_playback(self) -> None:
        playback = self._playback
        if playback is not None:
            self._clock.remove(playback)
            self._playback = None
            playback.stop()

    def use_webrtc(
        self, ice: IceLiteResponder, dtls: DtlsSrtp, *, on_failure: Callable[[str], None]
    ) -> WebRtcPort:
        """This side's party is a WebRTC endpoint (a browser): from now on its RTP port
        answers ICE checks, runs DTLS, and carries SRTP and SRTCP (rtcp-mux). A browser
        that takes the place of another gets a port of its own."""
        self.use_plain()
        self._webrtc = WebRtcPort(
            self._rtp.transport, self._rtp, self._rtcp, ice, dtls, on_failure=on_failure
        )
        return self._webrtc

    @property
    def channels(self) -> tuple[_Channel, _Channel]:
        """This side's RTP and RTCP channels."""
        return self._rtp, self._rtcp

    def forget_webrtc(self) -> None:
        """The session is closed: the browser's port (closed with the socket) is dropped."""
        self._webrtc = None

    def use_plain(self) -> None:
        """This side's party speaks plain RTP (again): a phone took a browser's place."""
        if self._webrtc is not None:
            self._webrtc.release()
            self._webrtc = None

    @property
    def rtp_port(self) -> int:
        return self.pair.rtp_port

    @property
    def rtcp_port(self) -> int:
        return self.pair.rtcp_port

    def set_remote(self, host: str, port: int, rtcp_port: int | None = None) -> None:
        """Where this side's party said (in SDP) it receives RTP, and RTCP (default
        ``port`` + 1). Reopens the latch. An unspecified address (0.0.0.0, the old way to
        put a call on hold) or port 0 means "do not send" until the party sends."""
        rtcp_port = port + 1 if rtcp_port is None else rtcp_port
        self._rtp.expect(self._socket_address(host, port))
        self._rtcp.expect(self._socket_address(host, rtcp_port))

    @property
    def remote(self) -> tuple[str, int] | None:
        """Where RTP for this side's party goes now (latched source or SDP address)."""
        return None if self._rtp.remote is None else (self._rtp.remote[0], self._rtp.remote[1])

    @property
    def rtcp_remote(self) -> tuple[str, int] | None:
        remote = self._rtcp.remote
        return None if remote is None else (remote[0], remote[1])

    @property
    def latched(self) -> bool:
        """Whether RTP from this side's party has been seen and latched."""
        return self._rtp.source is not None

    def rtp_counters(self) -> Counters:
        return self._rtp.counters()

    def rtcp_counters(self) -> Counters:
        return self._rtcp.counters()

    def _socket_address(self, host: str, port: int) -> SocketAddress | None:
        # An IP literal only: a name would make sendto resolve it, blocking, per packet.
        try:
            ip = _ip_address(host)
        except ValueError:
            raise ValueError(f"remote media host must be an IP address, not {host!r}") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid remote media port {port}")
        if ip.is_unspecified or port == 0:
            return None
        if self._family == socket.AF_INET:
            if ip.version != 4:
                raise ValueError(f"IPv6 remote {host} for an IPv4 relay socket")
            return (str(ip), port)
        if ip.version == 4:
            return (f"::ffff:{ip}", port, 0, 0)
        return (str(ip), port, 0, 0)


class RelaySession:
    """Two sides relayed to each other. Create through ``LocalMediaEngine``."""

    def __init__(
        self, a: RelaySide, b: RelaySide, on_closed: Callable[[RelaySession], None]
    ) -> None:
        self.a = a
        self.b = b
        self._on_closed = on_closed
        self._finished: asyncio.Future[list[None]] | None = None

    @classmethod
    async def open(
        cls,
        pair_a: PortPair,
        pair_b: PortPair,
        local_address: str,
        on_closed: Callable[[RelaySession], None],
        clock: FrameClock,
    ) -> RelaySession:
        """Start relaying on two bound port pairs. The pairs belong to the session from
        here on: ``on_closed`` runs once their sockets are closed, also on failure."""
        loop = asyncio.get_running_loop()
        a_rtp, b_rtp = _Channel(loop, _RTP_HEADER), _Channel(loop, _RTP_HEADER)
        a_rtcp, b_rtcp = _Channel(loop, _RTCP_HEADER), _Channel(loop, _RTCP_HEADER)
        a_rtp.peer, b_rtp.peer = b_rtp, a_rtp
        a_rtcp.peer, b_rtcp.peer = b_rtcp, a_rtcp
        session = cls(
            RelaySide(pair_a, local_address, a_rtp, a_rtcp, clock),
            RelaySide(pair_b, local_address, b_rtp, b_rtcp, clock),
            on_closed,
        )
        sockets = (pair_a.rtp_socket, pair_a.rtcp_socket, pair_b.rtp_socket, pair_b.rtcp_socket)
        try:
            for channel, sock in zip(session._channels, sockets, strict=True):
                await loop.create_datagram_endpoint(channel.itself, sock=sock)
        except BaseException:
            await session.close()
            raise
        return session

    @property
    def _channels(self) -> tuple[_Channel, ...]:
        return (*self.a.channels, *self.b.channels)

    @property
    def closed(self) -> bool:
        return self._finished is not None

    def exchange(self, mine: MediaSide, other: MediaSession, theirs: MediaSide) -> None:
        """``theirs``, a side of ``other``, takes the place of ``mine`` here and ``mine``
        takes its place there: each party keeps its ports (a browser its ICE and DTLS
        association) and now talks with the party of the other session. What listens at
        each place (a recording, the quality measure, key presses) stays with the place
        and hears its new party. The ports go back with the session a side ends in."""
        if not (
            isinstance(mine, RelaySide)
            and isinstance(theirs, RelaySide)
            and isinstance(other, RelaySession)
        ):
            raise TypeError("only sides of relay sessions can be exchanged")
        if self.closed or other.closed:
            raise RuntimeError("a closed session's sides cannot be exchanged")
        if mine not in (self.a, self.b) or theirs not in (other.a, other.b):
            raise ValueError("each side must be one of its session's")
        for own, their in zip(mine.channels, theirs.channels, strict=True):
            own_partner, their_partner = own.peer, their.peer
            own.peer, their_partner.peer = their_partner, own
            their.peer, own_partner.peer = own_partner, their
            own.trade_listeners(their)
        self._replace(mine, theirs)
        other._replace(theirs, mine)

    def _replace(self, side: RelaySide, by: RelaySide) -> None:
        if self.a is side:
            self.a = by
        else:
            self.b = by

    async def close(self) -> None:
        """Stop relaying, close the four sockets and give the ports back. Idempotent;
        returns once the sockets are closed. The release happens even if the caller is
        cancelled while waiting."""
        if self._finished is None:
            for side in (self.a, self.b):
                side.silence()
                side.clear_listeners()
            waits = []
            for channel in self._channels:
                if hasattr(channel, "transport"):
                    channel.transport.close()
                    waits.append(channel.closed)
            self._finished = asyncio.gather(*waits)
            self._finished.add_done_callback(self._released)
        await asyncio.shield(self._finished)

    def _released(self, _: object) -> None:
        """The sockets are closed: the ports go back, and the channels (paired with each
        other, wrapped by a browser's port) let go of each other and of their sides, so
        that the session is freed by reference counting, not left to the collector."""
        self._on_closed(self)
        for channel in self._channels:
            channel.unlink()
        for side in (self.a, self.b):
            side.forget_webrtc()
