"""The media engine as the call engine sees it.

``MediaEngine`` is kept narrow on purpose so that media can later move out of process
(rtpengine) behind the same calls; ``LocalMediaEngine`` is the in-process relay.
The call engine's use, per call:

    session = await engine.create_session()
    offer_to_b = sdp.anchor(offer_from_a, session.b.local_address, [session.b.rtp_port])
    session.a.set_remote(...)      # from A's SDP (sdp.SessionDescription.remote_endpoints)
    session.b.set_remote(...)      # from B's answer
    ...
    await session.close()          # however the call ends
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Protocol

from nuage.media import music
from nuage.media.player import FrameClock, Sound
from nuage.media.ports import PortAllocator
from nuage.media.prompts import Prompts
from nuage.media.relay import Counters, RelaySession
from nuage.media.rtcp_sender import ReportSettings
from nuage.media.sdp import RtpMap
from nuage.media.webrtc.dtls import Certificate, DtlsSrtp
from nuage.media.webrtc.ice_lite import IceLiteResponder


class MediaSide(Protocol):
    """One party's end of a media session: what to advertise to it, and where it is."""

    @property
    def local_address(self) -> str: ...

    @property
    def rtp_port(self) -> int: ...

    @property
    def rtcp_port(self) -> int: ...

    def set_remote(self, host: str, port: int, rtcp_port: int | None = None) -> None: ...

    def rtp_counters(self) -> Counters: ...

    def rtcp_counters(self) -> Counters: ...

    @property
    def hears(self) -> str:
        """What this side's party hears: "peer", "sound", "server" or "nothing"."""
        ...

    def relay(self) -> None:
        """Hear the other side (the default)."""

    def play(
        self,
        sound: Sound,
        codec: RtpMap,
        *,
        loop: bool = True,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Hear ``sound`` instead of the other side, looped or once (then ``then`` is
        called); ``UnsupportedCodecError`` when ``codec`` cannot be played."""

    def add_listener(self, listener: Callable[[bytes], object], *, rtcp: bool = False) -> None:
        """Give ``listener`` a copy of every RTP (or RTCP) packet this side's party sends."""

    def remove_listener(
        self, listener: Callable[[bytes], object], *, rtcp: bool = False
    ) -> None: ...

    def silence(self) -> None:
        """Hear nothing."""

    def send(self, packet: bytes) -> None:
        """Send this side's party an RTP packet the server made, beside what it hears."""

    def send_rtcp(self, packet: bytes) -> None:
        """Send this side's party an RTCP packet the server made (reports about a stream
        the server sends it, such as a conference's mix)."""

    def hear_server(self) -> Callable[[bytes], None]:
        """Hear only the RTP packets given to the returned function (a conference's mix)."""
        ...

    def use_webrtc(
        self, ice: IceLiteResponder, dtls: DtlsSrtp, *, on_failure: Callable[[str], None]
    ) -> object:
        """The party is a browser: ICE, DTLS-SRTP and muxed RTCP on the RTP port."""
        ...

    def use_plain(self) -> None:
        """The party speaks plain RTP (again): a phone took a browser's place."""
        ...


class MediaSession(Protocol):
    """Media between two parties, A and B, anchored on the server."""

    @property
    def a(self) -> MediaSide: ...

    @property
    def b(self) -> MediaSide: ...

    def exchange(self, mine: MediaSide, other: MediaSession, theirs: MediaSide) -> None:
        """``theirs`` (of ``other``) and ``mine`` change places, each party keeping its
        ports; what listens at a place stays there."""
        ...

    async def close(self) -> None: ...


class MediaEngine(Protocol):
    @property
    def music_on_hold(self) -> Sound: ...

    @property
    def beep(self) -> Sound: ...

    @property
    def ringback(self) -> Sound: ...

    @property
    def clock(self) -> FrameClock: ...

    @property
    def prompts(self) -> Prompts: ...

    @property
    def certificate(self) -> Certificate:
        """The DTLS certificate of the WebRTC legs."""
        ...

    async def create_session(self) -> MediaSession: ...

    @property
    def active_sessions(self) -> int: ...

    async def close(self) -> None: ...


class LocalMediaEngine:
    """Relay sessions in this process, on ports of [port_min, port_max] bound on
    ``bind_host`` and advertised as ``public_address`` (default: ``bind_host``).

    The streams the server makes (sounds, conference mixes) are reported in RTCP as
    ``reports`` say; by default with the CNAME ``nuage@<public_address>`` every 5 s or so
    (rtcp_sender.py)."""

    def __init__(
        self,
        bind_host: str,
        port_min: int,
        port_max: int,
        public_address: str | None = None,
        *,
        reports: ReportSettings | None = None,
    ) -> None:
        self.ports = PortAllocator(bind_host, port_min, port_max)
        if public_address is None:
            if ipaddress.ip_address(bind_host).is_unspecified:
                raise ValueError(
                    f"public_address is required when binding RTP on {bind_host}: "
                    "phones need an address they can send to"
                )
            public_address = bind_host
        try:
            self.public_address = str(ipaddress.ip_address(public_address))
        except ValueError:
            raise ValueError(f"public_address must be an IP address: {public_address!r}") from None
        self._sessions: set[RelaySession] = set()
        self._closed = False
        if reports is None:
            reports = ReportSettings(cname=f"nuage@{self.public_address}")
        self.clock = FrameClock(reports)
        self.prompts = Prompts()
        self._music_on_hold: Sound | None = None
        self._certificate: Certificate | None = None

    @property
    def certificate(self) -> Certificate:
        # Made on first use: generating a key costs a few milliseconds, and most servers'
        # tests never meet a browser.
        if self._certificate is None:
            self._certificate = Certificate.generate()
        return self._certificate

    @property
    def beep(self) -> Sound:
        return self.prompts.beep()

    @property
    def ringback(self) -> Sound:
        return self.prompts.ringback()

    @property
    def music_on_hold(self) -> Sound:
        if self._music_on_hold is None:
            self._music_on_hold = Sound("music on hold", music.render())
        return self._music_on_hold

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    async def create_session(self) -> RelaySession:
        """Bind two sides. Raises ``PortsExhaustedError`` when the range is full."""
        if self._closed:
            raise RuntimeError("media engine is closed")
        pair_a = self.ports.allocate()
        try:
            pair_b = self.ports.allocate()
        except BaseException:
            self.ports.release(pair_a)
            raise
        session = await RelaySession.open(
            pair_a, pair_b, self.public_address, self._closed_session, self.clock
        )
        if self._closed:  # the engine closed while the sockets were being set up
            await session.close()
            raise RuntimeError("media engine is closed")
        self._sessions.add(session)
        return session

    async def close(self) -> None:
        """Close every session; no session can be created afterwards."""
        self._closed = True
        await asyncio.gather(*(session.close() for session in list(self._sessions)))

    def _closed_session(self, session: RelaySession) -> None:
        self._sessions.discard(session)
        self.ports.release(session.a.pair)
        self.ports.release(session.b.pair)
