"""A telephone carrier simulator: the far end of a SIP trunk, for `nuage demo` and tests.

It plays the carrier on its own address (127.0.0.2:5080 for the demo trunk: the PBX tells
a trunk from a phone by source address, and phones use 127.0.0.1), built on Nuage's own SIP
stack and SDP model as libraries. It never imports ``nuage.pbx``: it is a peer of the PBX,
not part of it.

Calls from the PBX (INVITE to any number) ring (180) and are answered (200) after
``answer_delay`` seconds with PCMU/PCMA on the simulator's own RTP socket. By default the
answered call *echoes* the caller's RTP back: in a demo you hear yourself, which proves
audio both ways through the PBX's relay with nothing more than one phone. A few numbers
behave differently (:data:`DEFAULT_NUMBERS`, dialled in Belgium as 0470 00 04 xx):

    +32470000486  486 Busy Here           +32470000404  404 Not Found
    +32470000480  rings until cancelled   +32470000440  answers with a 440 Hz tone
    +32470000200  answers, echoes, and hangs up after ``hangup_after`` seconds

Calls to the PBX: :meth:`CarrierSimulator.call` sends an INVITE from the simulator's
address to a company number, plays a tone as PCMU/PCMA RTP (20 ms packets) once answered,
and hangs up after a while (`nuage carrier call +3225550100`).

No digest authentication either way: the demo trunk is IP-authenticated.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import math
import secrets
import struct
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from nuage.media import sdp
from nuage.sip.dialog import Dialog, DialogId, request_dialog_id
from nuage.sip.endpoint import ServerTransactionHandle, SipEndpoint, new_tag
from nuage.sip.grammar import SipSyntaxError
from nuage.sip.message import URI, Headers, Request, Response
from nuage.sip.peer import Peer

__all__ = [
    "DEFAULT_NUMBERS",
    "Behaviour",
    "CallResult",
    "CarrierSimulator",
]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.2"
DEFAULT_PORT = 5080
FRAME = 0.020  # seconds of audio per RTP packet
_SAMPLES = 160  # 20 ms at 8 kHz
_CODECS = {"PCMU": 0, "PCMA": 8}  # what the simulator speaks, by static payload type
# A call ringing this long at the simulator is answered 480 anyway: bounded, whatever the PBX
# does with its CANCEL.
_MAX_RING = 300.0
_BYE_TIMEOUT = 5.0


class Behaviour(enum.StrEnum):
    """What the simulator does with a call from the PBX to a given number."""

    ECHO = "echo"  # 180, 200 after answer_delay, the caller's RTP sent back to it
    TONE = "tone"  # answered like ECHO, but plays a continuous tone instead
    BUSY = "busy"  # 486 Busy Here
    UNKNOWN = "unknown"  # 404 Not Found
    NO_ANSWER = "no-answer"  # 180, then rings until CANCEL
    HANGUP = "hangup"  # answered like ECHO, then the carrier hangs up (BYE)


DEFAULT_NUMBERS: Mapping[str, Behaviour] = {
    "+32470000486": Behaviour.BUSY,
    "+32470000404": Behaviour.UNKNOWN,
    "+32470000480": Behaviour.NO_ANSWER,
    "+32470000440": Behaviour.TONE,
    "+32470000200": Behaviour.HANGUP,
}


# -- G.711 and RTP, just enough to send a tone -------------------------------------------


def _ulaw(sample: int) -> int:
    """One 16-bit linear sample as a mu-law byte (ITU-T G.711, as in Sun's g711.c)."""
    value = sample >> 2
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 0x21
    segment = max(value.bit_length() - 6, 0)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def _alaw(sample: int) -> int:
    """One 16-bit linear sample as an A-law byte (ITU-T G.711)."""
    value = sample >> 3
    mask = 0xD5
    if value < 0:
        value, mask = -value - 1, 0x55
    segment = max(value.bit_length() - 5, 0)
    if segment >= 8:
        return 0x7F ^ mask
    low = (value >> 1) if segment < 2 else (value >> segment)
    return ((segment << 4) | (low & 0x0F)) ^ mask


@functools.cache
def tone_frames(frequency: float, encoding: str, amplitude: float = 0.3) -> tuple[bytes, ...]:
    """One second of a sine as 20 ms G.711 payloads; a whole second so that integer
    frequencies loop without a click."""
    encode = _ulaw if encoding == "PCMU" else _alaw
    pcm = [
        round(amplitude * 32767 * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(8000)
    ]
    data = bytes(encode(s) for s in pcm)
    return tuple(data[i : i + _SAMPLES] for i in range(0, len(data), _SAMPLES))


class _Media(asyncio.DatagramProtocol):
    """The simulator's RTP socket for one call: echoes what it receives, or sends a tone.

    RTCP is neither sent nor read: the relay needs none, and a phone does not either.
    """

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.echo = False
        self.packets_in = 0
        self.packets_out = 0
        self._ssrc = secrets.randbits(32).to_bytes(4, "big")
        self._sender: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, host: str) -> _Media:
        loop = asyncio.get_running_loop()
        _, media = await loop.create_datagram_endpoint(cls, local_addr=(host, 0))
        return media

    @property
    def port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector transport does not subclass DatagramTransport: no isinstance.)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return  # not RTP
        self.packets_in += 1
        if self.echo and self.transport is not None:
            # Back where it came from (symmetric RTP), under our own SSRC: a phone that sees
            # its own SSRC come back may take it for a loop or a collision (RFC 3550 8.2).
            self.transport.sendto(data[:8] + self._ssrc + data[12:], addr)
            self.packets_out += 1

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable from a peer that went away: the call's end will follow

    def play(self, remote: tuple[str, int], payload_type: int, frames: Sequence[bytes]) -> None:
        """Send ``frames`` in a loop to ``remote``, one every 20 ms, until closed."""
        self._sender = asyncio.get_running_loop().create_task(
            self._send(remote, payload_type, frames)
        )

    async def _send(
        self, remote: tuple[str, int], payload_type: int, frames: Sequence[bytes]
    ) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        seq, stamp = secrets.randbits(16), secrets.randbits(32)
        n = 0
        while self.transport is not None and not self.transport.is_closing():
            marker = 0x80 if n == 0 else 0
            header = struct.pack(
                "!BBHI", 0x80, marker | payload_type, (seq + n) & 0xFFFF, (stamp + n * _SAMPLES)
            )
            with contextlib.suppress(OSError):
                self.transport.sendto(header + self._ssrc + frames[n % len(frames)], remote)
                self.packets_out += 1
            n += 1
            # Paced against the start time, so scheduling delays do not accumulate.
            await asyncio.sleep(max(0.0, start + n * FRAME - loop.time()))

    def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self.transport is not None:
            self.transport.close()


# -- SDP ------------------------------------------------------------------------------


def _audio(port: int, formats: list[str]) -> sdp.MediaDescription:
    """Our audio section: G.711 in ``formats`` (static payload types), 20 ms packets."""
    names = {str(pt): name for name, pt in _CODECS.items()}
    attributes = [sdp.Attribute("rtpmap", f"{pt} {names[pt]}/8000") for pt in formats]
    attributes += [sdp.Attribute("ptime", "20"), sdp.Attribute("sendrecv")]
    return sdp.MediaDescription("audio", port, "RTP/AVP", formats, attributes=attributes)


def _session(host: str, media: list[sdp.MediaDescription]) -> bytes:
    session = sdp.SessionDescription(
        origin=sdp.Origin("nuage-carrier", str(secrets.randbits(31)), 1, host),
        session_name="carrier",
        connection=sdp.Connection(host),
        media=media,
    )
    return session.encode()


def offer(host: str, port: int) -> bytes:
    """An offer of PCMU and PCMA."""
    return _session(host, [_audio(port, [str(pt) for pt in _CODECS.values()])])


@dataclass(frozen=True, slots=True)
class _Negotiated:
    """What an offer or answer from the PBX gives us: where to send, in which codec."""

    remote: tuple[str, int]
    payload_type: int
    encoding: str
    formats: list[str]  # the G.711 payload types it listed, in its order
    index: int  # which m= section


def _negotiate(body: bytes) -> _Negotiated:
    """The first audio section with PCMU or PCMA; ``sdp.SdpError`` when there is none."""
    description = sdp.parse(body)
    endpoints = description.remote_endpoints()
    for index, media in enumerate(description.media):
        endpoint = endpoints[index]
        if media.media != "audio" or endpoint is None or media.proto != "RTP/AVP":
            continue
        codecs = [c for c in media.codecs if c.encoding.upper() in _CODECS and c.clock_rate == 8000]
        if codecs:
            first = codecs[0]
            return _Negotiated(
                (endpoint.host, endpoint.rtp_port),
                first.payload_type,
                first.encoding.upper(),
                [str(c.payload_type) for c in codecs],
                index,
            )
    raise sdp.SdpError("no PCMU or PCMA audio stream")


def _answer(host: str, port: int, body: bytes, negotiated: _Negotiated) -> bytes:
    """The answer to ``body``: as many m= sections (RFC 3264 6), all refused but ours."""
    sections = [
        _audio(port, negotiated.formats)
        if index == negotiated.index
        else sdp.MediaDescription(media.media, 0, media.proto, media.formats[:1])
        for index, media in enumerate(sdp.parse(body).media)
    ]
    return _session(host, sections)


# -- calls ----------------------------------------------------------------------------


@dataclass(eq=False)
class _Call:
    dialog: Dialog
    media: _Media
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended_by: str = ""  # "pbx" or "carrier"
    hangup: asyncio.TimerHandle | None = None


@dataclass
class CallResult:
    """What happened to a call the simulator placed (:meth:`CarrierSimulator.call`)."""

    statuses: list[int] = field(default_factory=list)  # every response to the INVITE
    final: int = 0
    reason: str = ""
    codec: str = ""
    remote_rtp: str = ""
    packets_sent: int = 0
    packets_received: int = 0
    ended_by: str = ""  # "carrier", "pbx", or "" when never answered
    bye_status: int | None = None

    @property
    def answered(self) -> bool:
        return 200 <= self.final < 300


class CarrierSimulator:
    """The carrier: a SIP UA on ``host:port`` (port 0: any free port).

    ``numbers`` maps dialled numbers (as the PBX sends them, E.164) to a behaviour;
    any other number gets ``default``.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        numbers: Mapping[str, Behaviour] = DEFAULT_NUMBERS,
        default: Behaviour = Behaviour.ECHO,
        answer_delay: float = 1.0,
        hangup_after: float = 5.0,
        tone: float = 440.0,
    ) -> None:
        self.host = host
        self.port = port
        self.numbers = dict(numbers)
        self.default = default
        self.answer_delay = answer_delay
        self.hangup_after = hangup_after
        self.tone = tone
        self._endpoint: SipEndpoint | None = None
        self._calls: dict[DialogId, _Call] = {}
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def endpoint(self) -> SipEndpoint:
        assert self._endpoint is not None, "start() first"
        return self._endpoint

    async def start(self) -> None:
        """Listen on UDP ``host:port`` (``port`` becomes the bound one)."""
        self._endpoint = SipEndpoint(self._on_request)
        try:
            await self._endpoint.listen_udp(self.host, self.port)
        except BaseException:
            await self._endpoint.close()
            self._endpoint = None
            raise
        self.port = self._endpoint.transport.sent_by("udp")[1]

    async def close(self) -> None:
        """Hang up what is live, then stop listening."""
        await asyncio.gather(
            *(self._hang_up(call) for call in list(self._calls.values())), return_exceptions=True
        )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._endpoint is not None:
            await self._endpoint.close()
            self._endpoint = None

    def _contact(self) -> str:
        return f"<sip:carrier@{self.host}:{self.port}>"

    # -- calls from the PBX --

    async def _on_request(self, tx: ServerTransactionHandle) -> None:
        # Every path answers: the endpoint would send 500 otherwise, and log a traceback.
        request = tx.request
        try:
            if request.method == "INVITE" and request.to.tag is None:
                await self._incoming(tx)
            elif request.method == "INVITE":
                self._reinvite(tx)
            elif request.method == "BYE":
                self._bye(tx)
            elif request.method == "OPTIONS":
                tx.respond(200, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")])
            else:
                tx.respond(405, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")])
        except (SipSyntaxError, ValueError) as exc:
            # A header we need (From, To, Contact...) does not parse.
            log.info("carrier: bad %s: %s", request.method, exc)
            if not tx.final_sent:
                tx.respond(400)
        except OSError as exc:  # no RTP socket to be had
            log.warning("carrier: cannot take a call: %s", exc)
            if not tx.final_sent:
                tx.respond(503)

    def behaviour_of(self, number: str) -> Behaviour:
        return self.numbers.get(number, self.default)

    async def _incoming(self, tx: ServerTransactionHandle) -> None:
        request = tx.request
        number = request.uri.user or ""
        behaviour = self.behaviour_of(number)
        if not request.contacts:  # (parsing them first: a bad one is a 400, before ringing)
            tx.respond(400, "Missing Contact")
            return
        log.info("carrier: call to %s from %s: %s", number, request.from_.uri.user, behaviour)
        if behaviour is Behaviour.BUSY:
            tx.respond(486)
            return
        if behaviour is Behaviour.UNKNOWN:
            tx.respond(404)
            return
        try:
            negotiated = _negotiate(request.body)
        except sdp.SdpError as exc:
            log.info("carrier: 488 for the offer to %s: %s", number, exc)
            tx.respond(488)
            return
        tx.respond(180, headers=[("Contact", self._contact())])
        ring = _MAX_RING if behaviour is Behaviour.NO_ANSWER else self.answer_delay
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tx.cancelled.wait(), ring)
        if tx.cancelled.is_set():
            log.info("carrier: call to %s cancelled", number)
            tx.respond(487)
            return
        if behaviour is Behaviour.NO_ANSWER:
            tx.respond(480)
            return
        media = await _Media.open(self.host)
        try:
            body = _answer(self.host, media.port, request.body, negotiated)
            response = tx.respond(
                200,
                headers=[("Contact", self._contact()), ("Content-Type", "application/sdp")],
                body=body,
            )
            dialog = Dialog.from_uas(request, response, peer=tx.source)
        except BaseException:
            media.close()
            raise
        call = _Call(dialog, media)
        self._calls[dialog.id] = call
        self._start_media(call, behaviour, negotiated)
        if await tx.wait_ack() is None:
            log.info("carrier: no ACK for the call to %s, hanging up", number)
            await self._hang_up(call)
            return
        if behaviour is Behaviour.HANGUP and not call.ended.is_set():
            call.hangup = asyncio.get_running_loop().call_later(
                self.hangup_after, self._spawn_hang_up, call
            )

    def _start_media(self, call: _Call, behaviour: Behaviour, negotiated: _Negotiated) -> None:
        if behaviour is Behaviour.TONE:
            frames = tone_frames(self.tone, negotiated.encoding)
            call.media.play(negotiated.remote, negotiated.payload_type, frames)
        else:
            call.media.echo = True

    def _reinvite(self, tx: ServerTransactionHandle) -> None:
        """A re-INVITE (hold, a new relay address...): same socket, new remote."""
        call = self._calls.get(request_dialog_id(tx.request))
        if call is None:
            tx.respond(481)
            return
        try:
            negotiated = _negotiate(tx.request.body)
        except sdp.SdpError:
            tx.respond(488)
            return
        call.dialog.handle_request(tx.request)
        body = _answer(self.host, call.media.port, tx.request.body, negotiated)
        tx.respond(
            200,
            headers=[("Contact", self._contact()), ("Content-Type", "application/sdp")],
            body=body,
        )

    def _bye(self, tx: ServerTransactionHandle) -> None:
        call = self._calls.get(request_dialog_id(tx.request))
        if call is None:
            tx.respond(481)
            return
        tx.respond(200)
        call.ended_by = "pbx"
        self._end(call)

    # -- hanging up --

    def _end(self, call: _Call) -> None:
        if self._calls.pop(call.dialog.id, None) is None:
            return
        if call.hangup is not None:
            call.hangup.cancel()
        call.media.close()
        call.ended.set()
        log.info(
            "carrier: call %s ended by %s (%d RTP packets in, %d out)",
            call.dialog.call_id,
            call.ended_by,
            call.media.packets_in,
            call.media.packets_out,
        )

    def _spawn_hang_up(self, call: _Call) -> None:
        self._spawn(self._hang_up(call))

    async def _hang_up(self, call: _Call) -> int | None:
        """BYE from the carrier's side; the BYE's final status (None if already over)."""
        if call.dialog.id not in self._calls:
            return None
        call.ended_by = "carrier"
        self._end(call)
        bye = call.dialog.create_request("BYE")
        assert call.dialog.peer is not None
        tx = await self.endpoint.request(bye, call.dialog.peer)
        try:
            final = await asyncio.wait_for(tx.final(), _BYE_TIMEOUT)
        except TimeoutError:
            return None
        return final.status

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- calls to the PBX --

    async def call(
        self,
        server: Peer,
        number: str,
        *,
        seconds: float = 5.0,
        caller: str = "+3222220000",
        ring_timeout: float = 60.0,
        on_event: Callable[[str], None] = lambda text: None,
    ) -> CallResult:
        """Call ``number`` at the PBX ``server``: a tone once answered, BYE after
        ``seconds`` (unless the PBX hangs up first). ``on_event`` hears each step."""
        result = CallResult()
        media = await _Media.open(self.host)
        try:
            await self._call(
                server=server,
                number=number,
                seconds=seconds,
                caller=caller,
                ring_timeout=ring_timeout,
                on_event=on_event,
                media=media,
                result=result,
            )
        finally:
            media.close()
            result.packets_sent = media.packets_out
            result.packets_received = media.packets_in
        return result

    async def _call(
        self,
        *,
        server: Peer,
        number: str,
        seconds: float,
        caller: str,
        ring_timeout: float,
        on_event: Callable[[str], None],
        media: _Media,
        result: CallResult,
    ) -> None:
        headers = Headers()
        headers.add("From", f"<sip:{caller}@{self.host}>;tag={new_tag()}")
        headers.add("To", f"<sip:{number}@{server.host}>")
        headers.add("Call-ID", f"{secrets.token_hex(12)}@{self.host}")
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", self._contact())
        headers.add("Content-Type", "application/sdp")
        uri = URI("sip", number, host=server.host, port=server.port)
        invite = Request("INVITE", uri, headers, offer(self.host, media.port))
        on_event(f"INVITE sip:{number}@{server.host}:{server.port} from {caller}")
        tx = await self.endpoint.request(invite, server)
        final: Response | None = None
        try:
            async with asyncio.timeout(ring_timeout):
                async for response in tx:
                    result.statuses.append(response.status)
                    on_event(f"{response.status} {response.reason}")
                    if response.status >= 200:
                        final = response
        except TimeoutError:
            on_event(f"no answer within {ring_timeout:g} s: CANCEL")
            tx.cancel()
            final = await tx.final()
            on_event(f"{final.status} {final.reason}")
        except asyncio.CancelledError:
            tx.cancel()  # interrupted while ringing: leave nothing ringing behind
            raise
        if final is None:
            final = await tx.final()
        result.final, result.reason = final.status, final.reason
        if not result.answered:
            return
        try:
            dialog = Dialog.from_uac(invite, final, peer=server)
        except (SipSyntaxError, ValueError) as exc:
            on_event(f"unusable 2xx ({exc}): cannot ACK it")
            return
        self.endpoint.send_ack(dialog.create_ack(invite.cseq.seq), server)
        call = _Call(dialog, media)
        self._calls[dialog.id] = call
        try:
            negotiated = _negotiate(final.body)
        except sdp.SdpError as exc:
            on_event(f"unusable answer ({exc}): BYE")
            result.bye_status = await self._hang_up(call)
            result.ended_by = "carrier"
            return
        result.codec = negotiated.encoding
        result.remote_rtp = f"{negotiated.remote[0]}:{negotiated.remote[1]}"
        on_event(
            f"answered: {negotiated.encoding} to {result.remote_rtp}, "
            f"sending {self.tone:g} Hz for {seconds:g} s"
        )
        frames = tone_frames(self.tone, negotiated.encoding)
        media.play(negotiated.remote, negotiated.payload_type, frames)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.ended.wait(), seconds)
        finally:
            if not call.ended.is_set():
                # Shielded: an interrupted `nuage carrier call` still hangs up cleanly.
                result.bye_status = await asyncio.shield(self._hang_up(call))
        result.ended_by = call.ended_by
        if result.ended_by == "carrier":
            on_event(f"BYE -> {result.bye_status or 'no answer'}")
        else:
            on_event("the PBX hung up (BYE)")
