"""Calls: a back-to-back user agent with its media anchored in our relay (the engine
that runs them all is call_engine.py).

A call is two legs: A, the dialog with whoever sent the INVITE, and B, the dialog we
open towards the callee (every registered device of a user in parallel, or the trunk:
dialing.py). Each leg's SDP is rewritten so that both parties send their RTP to our
relay (offer_answer.py); in-dialog requests on one leg are re-issued on the other.

What happens during the call moves legs and media around that relay: a hold is
answered here and the other party hears music; a transfer puts a new party in a leg's
place, on that leg's relay ports; a recording and the quality measurement tap the relay;
a conference hands the legs to the mixer; parties without a common codec are transcoded.
A call can also be answered here and run by an application (a voice menu, ivr.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from nuage.media import sdp
from nuage.media.dtmf import (
    DTMF,
    DTMF_RELAY,
    DigitPressed,
    DtmfError,
    DtmfEventReceiver,
    DtmfEventSender,
    build_dtmf_relay,
    parse_info_body,
)
from nuage.media.engine import MediaSession, MediaSide
from nuage.media.inbound import InbandKeys, can_decode
from nuage.media.leg_quality import CallQuality, LegQuality
from nuage.media.player import can_encode
from nuage.media.ports import PortsExhaustedError
from nuage.media.quality import codec_for
from nuage.media.rtp import RtpError, RtpPacket, RtpSender
from nuage.media.transcode import TranscodedDirection, can_transcode
from nuage.media.webrtc.sdp import is_webrtc
from nuage.pbx.browser_ends import BrowserEnd
from nuage.pbx.conference import Conference, ConferenceError, merge
from nuage.pbx.dialing import (
    ALLOW,
    API_CALL_ID_HEADER,
    Destination,
    Forking,
    ForkOutcome,
    Party,
    is_browser,
    most_telling,
)
from nuage.pbx.offer_answer import (
    Anchored,
    SdpRejected,
    agreed_codecs,
    anchor,
    audio_section,
    event_payload_type,
    keep_telephone_event,
    local_answer,
    offer_telephone_event,
    own_answer,
    same_codec,
    transcoded_answer,
    with_transcodable,
)
from nuage.pbx.originated import OriginatedInvite
from nuage.pbx.routing import Refused
from nuage.sip.dialog import Dialog
from nuage.sip.endpoint import ServerTransactionHandle
from nuage.sip.grammar import SipSyntaxError
from nuage.sip.message import URI, Address, Request, Response
from nuage.store.models import Company

if TYPE_CHECKING:
    from nuage.pbx.call_engine import CallEngine
    from nuage.pbx.records import OpenRecord

log = logging.getLogger(__name__)

BYE_TIMEOUT = 10.0
_REINVITE_TIMEOUT = 32.0  # 64*T1, as long as a transaction may take
RETRY_AFTER = ("Retry-After", "5")
FEATURE_RECORD = "*1"
FEATURE_CONFERENCE = "*3"  # merge with the user's other call (F15)
# Keys further apart than this do not make one feature code.
_FEATURE_CODE_GAP = 3.0
_KEY_PRESS_SECONDS = 0.1  # the length of a key press we make (RFC 4733 events)


@dataclass(slots=True)
class Leg:
    name: str  # "A", "B", then "C", "D"... for legs that transfers bring in
    dialog: Dialog
    media: MediaSide
    party: Party
    other: Leg | None = field(default=None, repr=False)
    # The party hung up (or was hung up on): nothing more is sent in this dialog.
    gone: bool = False
    # Our ACK to this leg's 2xx waits for the caller's ACK (late offer): until then a
    # retransmitted 2xx must not be acknowledged without the SDP answer.
    awaiting_ack: bool = False


@dataclass(frozen=True, slots=True)
class TransferTarget:
    """Where a transfer goes, as routing resolved it for the transferring user."""

    callee: Party
    destinations: list[Destination]
    direction: str  # "internal" or "outbound"
    # Shown to the target instead of the transferee (a carrier takes only our numbers).
    caller: Party | None = None


class Application(Protocol):
    """What a call the server answers itself runs (an IVR menu): it plays to the caller
    and hears its keys, then transfers it (``Call.transfer_to``) or hangs up."""

    @property
    def party(self) -> Party:
        """Who the caller reached (the menu's extension and name)."""
        ...

    @property
    def outcome(self) -> str:
        """What the call's record says of a call it took: "answered" (a menu), or
        "voicemail" (the callee was not reached: a missed call with a message)."""
        ...

    async def run(self, call: Call, caller: Leg) -> None: ...

    def on_digit(self, digit: str) -> None: ...


# The caller's INVITE: from its device, or made up when the server called the device
# first (click-to-call).
CallerTransaction = ServerTransactionHandle | OriginatedInvite

RecordingSource = tuple[MediaSide, dict[int, sdp.RtpMap]]
"""A party's relay side and the codecs it sends, by payload type."""

TransferResolver = Callable[[Company, Party, str], "TransferTarget | Refused"]

# What takes a call the callee cannot (voicemail), looked up only then; None: nothing.
Fallback = Callable[[], Awaitable[Application | None]]


@dataclass(slots=True)
class Transfer:
    """A blind transfer in progress: the transferee hears music while the target rings."""

    transferor: Leg
    transferee: Leg
    target: TransferTarget
    subscribed: bool  # NOTIFYs of its progress are wanted (RFC 3515; RFC 4488 Refer-Sub)
    forking: Forking | None = None
    # The transferor's side as a browser target would have it (a WebRTC offer made).
    browser: BrowserEnd | None = None
    transferor_left: asyncio.Event = field(default_factory=asyncio.Event)
    # "answered", or the sipfrag status line of the failure.
    outcome: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _SetUpFailed(Exception):
    """The call could not be set up; the caller has its answer already."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


class Call:
    """One call from the INVITE to the last BYE."""

    def __init__(
        self,
        engine: CallEngine,
        tx: CallerTransaction,
        company: Company,
        caller: Party,
        callee: Party,
        *,
        direction: str,
        shown_caller: Party | None = None,
    ) -> None:
        self.engine = engine
        self.tx = tx
        self.company = company
        self.caller = caller
        self.callee = callee
        self.direction = direction
        # Who the callee's devices see calling, when not the caller (a call forwarded
        # outside goes out with the forwarding user's number: carriers take only ours).
        self.shown_caller = shown_caller or caller
        self.a: Leg | None = None
        self.b: Leg | None = None
        self.session: MediaSession | None = None
        self.answered_at: datetime | None = None
        self._ended = asyncio.Event()
        self._end_reason = ""
        # Whether each side's last SDP said it sends audio: silence is then suspicious.
        self._sends: dict[MediaSide, bool] = {}
        # The last SDP each party sent us and the last we sent it (hold answers build on
        # these; music on hold plays in the receiving party's own codec and numbering).
        self._received: dict[MediaSide, sdp.SessionDescription] = {}
        self._sent: dict[MediaSide, sdp.SessionDescription] = {}
        # The legs ("A", "B") whose party put the call on hold.
        self.holding: set[str] = set()
        self._transfer: Transfer | None = None
        self._former_legs: list[Leg] = []
        self._leg_names = iter("CDEFGHIJKLMNOPQRSTUVWXYZ")
        self.transferred_to: list[Party] = []
        self.external_legs = 0
        self._record: OpenRecord | None = None
        # Recordings of this call sent to the database so far (its log entries list them).
        self.recordings_made = 0
        # From the parties' RTCP, which the relay forwards end to end.
        self.quality = CallQuality(LegQuality(), LegQuality())
        self._measuring = False
        # Digits each leg's party keyed recently, for feature codes (*1: record).
        self._keyed: dict[str, tuple[str, float]] = {}
        # Set while the server itself is the other party (an IVR menu).
        self.application: Application | None = None
        # The parties share no codec: each direction is decoded and re-encoded.
        self.transcoding = False
        self._transcoders: list[tuple[MediaSide, TranscodedDirection]] = []
        # Once merged (F15): the legs hear the mixer, each leaves on its own.
        self.conference: Conference | None = None
        # Takes the call when the callee cannot (no answer, busy, no device): voicemail.
        self.fallback: Fallback | None = None
        # The sides facing a browser (a WebRTC party).
        self._browsers: dict[MediaSide, BrowserEnd] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def _anchor(
        self, description: sdp.SessionDescription, sender: MediaSide, receiver: MediaSide
    ) -> sdp.SessionDescription:
        """``description`` from the party of ``sender`` made ready to send to the party of
        ``receiver`` (see ``offer_answer.anchor``); remembered as that party's last SDP."""
        anchored = self._anchored(description, sender, receiver)
        self._sends[sender] = anchored.sends
        self._received[sender] = description
        self._sent[receiver] = anchored.description
        return anchored.description

    def _anchored(
        self, description: sdp.SessionDescription, sender: MediaSide, receiver: MediaSide
    ) -> Anchored:
        """``offer_answer.anchor`` in each party's flavour: a browser's SDP is made plain
        first (its first one starts its side's WebRTC port), and what a browser is to
        receive is made WebRTC."""
        anchored = anchor(self._plain(description, sender), sender, receiver)
        browser = self._browsers.get(receiver)
        if browser is None:
            return anchored
        return replace(anchored, description=browser.to_browser(anchored.description))

    def _plain(
        self, description: sdp.SessionDescription, sender: MediaSide
    ) -> sdp.SessionDescription:
        """The SDP ``sender``'s party sent, as plain SDP: a browser's is made plain by its
        side's browser end (its first one starts the side's WebRTC port)."""
        if is_webrtc(description):
            return self._browser(sender).from_browser(description)
        return description

    def _hand_over(self, side: MediaSide, browser: BrowserEnd | None) -> None:
        """A new party takes ``side`` (a transfer): a browser it faced is let go, and
        ``browser`` is the new party's end when it is one."""
        former = self._browsers.pop(side, None)
        if former is not None and former is not browser:
            former.stop()
        if browser is not None:
            self._browsers[side] = browser

    def faces_browser(self, leg: Leg) -> bool:
        """``leg``'s party is a browser (its media is WebRTC)."""
        return leg.media in self._browsers

    def _browser(self, side: MediaSide) -> BrowserEnd:
        """The side's browser end, made on first use."""
        browser = self._browsers.get(side)
        if browser is None:
            browser = BrowserEnd(side, self.engine.media.certificate, self._webrtc_failed)
            self._browsers[side] = browser
        return browser

    def _webrtc_failed(self, reason: str) -> None:
        log.warning("call %s: WebRTC leg failed: %s", self.call_id, reason)
        if not self._ended.is_set():
            self._spawn(self._hang_up_all(f"WebRTC: {reason}"))

    @property
    def call_id(self) -> str:
        """The caller's Call-ID: names the call in logs and its record."""
        return self.tx.request.call_id

    def legs(self) -> Iterable[Leg]:
        return [leg for leg in (self.a, self.b) if leg is not None]

    def all_legs(self) -> Iterable[Leg]:
        """The current legs and those that transfers took out of the call."""
        return [*self.legs(), *self._former_legs]

    def count_external(self) -> None:
        """One more leg of this call goes out through a trunk (the company's limit)."""
        self.external_legs += 1
        self.engine.external_calls[self.company.id] += 1

    async def run(self, destinations: list[Destination] | Application) -> None:
        self._record = record = self.engine.recorder.start(self)
        outcome, reason = "failed", ""
        try:
            outcome, reason = await self._connect(destinations)
            if outcome == "answered":
                await self._ended.wait()
                reason = self._end_reason
            elif outcome == "voicemail":
                await self._ended.wait()
        except Exception:
            log.exception("call %s failed", self.call_id)
            if not self.tx.final_sent:
                self.tx.respond(500, "Call engine error")
            await self._hang_up_all()
        finally:
            if self.conference is not None:
                self.conference.forget(self)
            recordings = self.engine.recordings
            if recordings is not None and recordings.is_recording(self):
                await recordings.stop(self, "hangup")
            if self.session is not None:
                await self.session.close()
            self.engine.recorder.finish(record, self, outcome, reason)

    def dismantle(self) -> None:
        """The call is over and everyone was told: its parts let go of each other, so that
        reference counting frees them at once. Left in cycles (the legs facing each other,
        the browser ends calling back), calls waited for the garbage collector, whose
        collections then paused the server for seconds under load."""
        for leg in self.all_legs():
            leg.other = None
        self._browsers.clear()
        self._transfer = None
        self.application = None
        self.conference = None
        self._transcoders.clear()

    async def record_id(self) -> int | None:
        """The id of this call's record once written; None if it could not be."""
        if self._record is None:
            return None
        try:
            return await asyncio.shield(self._record.id)
        except Exception:
            return None

    # -- set-up ------------------------------------------------------------------------

    async def _connect(self, destinations: list[Destination] | Application) -> tuple[str, str]:
        try:
            if isinstance(destinations, list):
                return await self._set_up(destinations)
            return await self._answer_for(destinations)
        finally:
            self.engine.set_up_over(self)

    @property
    def over(self) -> asyncio.Event:
        """Set once the call has ended, whoever ended it."""
        return self._ended

    async def _answer_for(self, application: Application, reason: str = "") -> tuple[str, str]:
        """Answer the caller here, then let ``application`` run the call. Its side of the
        call is leg B, a leg with no SIP peer (nothing is ever sent to it); a transfer
        puts a real party in its place. ``reason``: why the application took the call,
        for its record."""
        tx = self.tx
        if not tx.request.body:
            tx.respond(488, "An SDP offer is needed to reach this number")
            return "failed", "no SDP offer"
        try:
            offer, session = await self._offer_and_media()
        except _SetUpFailed as failed:
            return failed.outcome, failed.reason
        assert offer is not None
        try:
            browser = self._browser(session.a) if is_webrtc(offer) else None
            plain = browser.from_browser(offer) if browser is not None else offer
            answer, _ = own_answer(
                plain, session.a, lambda c: can_encode(c.encoding, c.clock_rate) and can_decode(c)
            )
            if browser is not None:
                answer = browser.to_browser(answer)
        except SdpRejected as exc:
            tx.respond(488, str(exc))
            return "failed", "bad SDP"
        self._received[session.a], self._sent[session.a] = offer, answer
        self._sends[session.a] = True
        sent = tx.respond(
            200,
            headers=[
                ("Contact", self.engine.contact_for(tx.source.transport)),
                ("Allow", ALLOW),
                ("Content-Type", "application/sdp"),
            ],
            body=answer.encode(),
        )
        a_dialog = self._caller_dialog(sent)
        self.a = Leg("A", a_dialog, session.a, self.caller)
        party = application.party
        own_end = Dialog(
            call_id=a_dialog.call_id,
            local_tag=a_dialog.remote_tag,
            remote_tag=a_dialog.local_tag,
            local_uri=a_dialog.remote_uri,
            remote_uri=a_dialog.local_uri,
            remote_target=URI("sip", party.number, host=self.company.domain),
            local_seq=0,
            remote_seq=None,
        )
        self.b = Leg("B", own_end, session.b, party, gone=True)
        self.a.other, self.b.other = self.b, self.a
        self.engine.register_leg(self, self.a)
        self._listen_for_digits(self.a)
        self.answered_at = datetime.now(UTC)
        self.application = application
        self.engine.changed(self, "answered")
        loop = asyncio.get_running_loop()
        self._background(loop.create_task(self._await_caller_ack()))
        if self.engine.media_timeout > 0:
            self._background(loop.create_task(self._watch_media(self.engine.media_timeout)))
        self._spawn(self._run_application(application))
        return application.outcome, reason

    def _caller_dialog(self, sent: Response) -> Dialog:
        """The caller's dialog, once ``sent`` (our 2xx) answered its INVITE."""
        if isinstance(self.tx, OriginatedInvite):
            return self.tx.dialog
        return Dialog.from_uas(self.tx.request, sent, peer=self.tx.source)

    async def _await_caller_ack(self) -> None:
        if await self.tx.wait_ack() is None and not self._ended.is_set():
            await self._hang_up_all("no ACK from caller")

    async def _run_application(self, application: Application) -> None:
        caller = self.a
        assert caller is not None
        inband: Callable[[bytes], None] | None = None
        audio = audio_section(self._sent.get(caller.media))
        if audio is not None and event_payload_type(self._sent.get(caller.media)) is None:
            # No telephone-event with the caller: its keys can only be tones in its audio.
            inband = InbandKeys(audio.rtpmaps, lambda key: self._on_digit(caller, key)).packet
            caller.media.add_listener(inband)
        try:
            await application.run(self, caller)
        except Exception:
            log.exception("call %s: %s failed", self.call_id, application.party.number)
            await self._hang_up_all("application error")
        finally:
            if inband is not None:
                caller.media.remove_listener(inband)
            if self.application is application:
                self.application = None

    async def _set_up(self, destinations: list[Destination]) -> tuple[str, str]:
        tx = self.tx
        if not destinations:
            fallback = await self.fallback() if self.fallback is not None else None
            if fallback is not None:
                return await self._answer_for(fallback, "offline")
            tx.respond(480, "Not registered")
            return "failed", "offline"
        try:
            offer, session = await self._offer_and_media()
        except _SetUpFailed as failed:
            return failed.outcome, failed.reason
        offer_to_b: sdp.SessionDescription | None = None
        if offer is not None:
            try:
                offer_to_b = self._anchor(offer, session.a, session.b)
                offer_telephone_event(offer_to_b)
            except SdpRejected as exc:
                tx.respond(488, str(exc))
                return "failed", "bad SDP"
        outcome = await self._fork(destinations, offer_to_b)
        if outcome.kind == "failed" and offer_to_b is not None and _no_common_codec(outcome):
            # The callees take none of the caller's codecs: offered again with those we
            # can transcode to (only now: transcoding costs CPU and some quality).
            extended = with_transcodable(offer_to_b, can_transcode)
            if extended is not None and not tx.cancelled.is_set():
                log.info("call %s: no common codec, offering transcoding", self.call_id)
                self._sent[session.b] = extended
                outcome = await self._fork(destinations, extended)
        if outcome.kind == "answered":
            return "answered", ""
        if outcome.kind == "cancelled":
            tx.respond(487)
            return "cancelled", "caller hung up"
        if self.fallback is not None and outcome.kind in ("timeout", "failed"):
            fallback = await self.fallback()
            if fallback is not None:
                why = "no answer" if outcome.kind == "timeout" else _fallback_reason(outcome)
                return await self._answer_for(fallback, why)
        if outcome.kind == "timeout":
            tx.respond(480, "No answer")
            return "missed", "no answer"
        if outcome.kind == "bad_sdp":
            tx.respond(488, "The callee's SDP is unusable")
            return "failed", "bad SDP from callee"
        status, reason, busy = most_telling(outcome.failures)
        tx.respond(status, reason)
        if busy:
            return "busy", f"{status} {reason}"
        return "failed", ", ".join(str(r.status) for r in outcome.failures)

    async def _offer_and_media(self) -> tuple[sdp.SessionDescription | None, MediaSession]:
        """The caller's SDP offer (None: a late offer) and the call's media session;
        ``_SetUpFailed`` once the caller is answered with why not."""
        tx = self.tx
        try:
            offer = sdp.parse(tx.request.body) if tx.request.body else None
        except sdp.SdpError as exc:
            tx.respond(488, f"Bad SDP: {exc}"[:100])
            raise _SetUpFailed("failed", "bad SDP") from None
        if self.session is not None:
            # The callee could not be reached: the fallback answers on the same ports.
            return offer, self.session
        if isinstance(tx, OriginatedInvite):
            # The device's SDP answered an offer of this session's ports already.
            self.session = tx.session
            if tx.browser is not None:
                tx.browser.on_failure = self._webrtc_failed
                self._browsers[self.session.a] = tx.browser
            return offer, self.session
        try:
            self.session = await self.engine.media.create_session()
        except PortsExhaustedError as exc:
            # Overload, not a fault: no traceback, and the caller may try again later.
            log.warning("call %s refused: %s", self.call_id, exc)
            tx.respond(503, "No media ports free", headers=[RETRY_AFTER])
            raise _SetUpFailed("failed", "no media ports") from None
        return offer, self.session

    async def _fork(
        self, destinations: list[Destination], offer: sdp.SessionDescription | None
    ) -> ForkOutcome:
        assert self.session is not None
        browser_offer: bytes | None = None
        if offer is not None and any(is_browser(d.peer) for d in destinations):
            # Browsers among the callee's devices are offered the same media, in WebRTC;
            # the side stays plain unless one of them answers (answer_a).
            browser_offer = self._browser(self.session.b).to_browser(offer).encode()
        forks = Forking(
            self.engine,
            self.company,
            self.shown_caller,
            destinations,
            offer.encode() if offer is not None else b"",
            on_answer=self.answer_a,
            on_provisional=self.provisional_to_a,
            identity_header=self.direction == "outbound",
            browser_offer=browser_offer,
            api_call_id=self.call_id,
        )
        self.tx.add_cancel_callback(forks.cancel)
        return await forks.run()

    @property
    def late_offer(self) -> bool:
        """A sent no SDP: B's 2xx carries the offer and A's ACK the answer (RFC 3261 13.2.1)."""
        return not self.tx.request.body

    def answer_a(self, response: Response, b_dialog: Dialog) -> bool:
        """B answered: relay its SDP to A, open both legs. False when B's SDP is unusable
        (B is then acknowledged and hung up; A is answered with an error by the caller)."""
        assert self.session is not None
        b_peer = b_dialog.peer
        assert b_peer is not None
        try:
            described = sdp.parse(response.body)
            if not is_webrtc(described):
                # A phone won (or a WebSocket client with plain RTP): B's side stays plain.
                self._browsers.pop(self.session.b, None)
            answer = self._anchor(described, self.session.b, self.session.a)
            browser = self._browsers.get(self.session.b)
            if browser is not None:
                # What the browser got was the WebRTC form of the offer.
                self._sent[self.session.b] = browser.to_browser(self._sent[self.session.b])
            offer = self._received.get(self.session.a)
            transcoded = (
                transcoded_answer(answer, offer, can_transcode) if offer is not None else None
            )
            if transcoded is not None:
                self._sent[self.session.a] = answer = transcoded
                self.transcoding = True
            if offer is not None:  # else (a late offer) B's SDP is the offer
                keep_telephone_event(answer, offer)
            body = answer.encode()
        except (sdp.SdpError, SdpRejected) as exc:
            log.info("call %s: unusable SDP from B: %s", self.call_id, exc)
            self.engine.endpoint.send_ack(b_dialog.create_ack(response.cseq.seq), b_peer)
            self._background(asyncio.get_running_loop().create_task(self._send_bye_to(b_dialog)))
            return False
        if not self.late_offer:
            self.engine.endpoint.send_ack(b_dialog.create_ack(response.cseq.seq), b_peer)
        sent = self.tx.respond(
            200,
            headers=[
                ("Contact", self.engine.contact_for(self.tx.source.transport)),
                ("Allow", ALLOW),
                ("Content-Type", "application/sdp"),
            ],
            body=body,
        )
        a_dialog = self._caller_dialog(sent)
        self.a = Leg("A", a_dialog, self.session.a, self.caller)
        self.b = Leg("B", b_dialog, self.session.b, self.callee)
        self.a.other, self.b.other = self.b, self.a
        self.engine.register_leg(self, self.a)
        self.engine.register_leg(self, self.b)
        self._listen_for_digits(self.a)
        self._listen_for_digits(self.b)
        self._measure_quality()
        if self.transcoding:
            log.info("call %s: transcoding between A and B", self.call_id)
            self.route_media()
        self.b.awaiting_ack = self.late_offer
        self.answered_at = datetime.now(UTC)
        self.engine.changed(self, "answered")
        loop = asyncio.get_running_loop()
        self._background(loop.create_task(self._await_ack(response.cseq.seq)))
        if self.engine.media_timeout > 0:
            self._background(loop.create_task(self._watch_media(self.engine.media_timeout)))
        return True

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _background(self, task: asyncio.Task[None]) -> None:
        # Keep a reference: the loop only holds tasks weakly.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_media(self, silence_limit: float) -> None:
        """Hang up a call whose media stopped: a phone that vanished (crash, lost network)
        sends no BYE, and without this the call and its ports would live forever."""
        loop = asyncio.get_running_loop()
        period = min(5.0, silence_limit / 4)
        seen: dict[str, tuple[int, float]] = {}
        while not self._ended.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await self._ended.wait()
                return
            now = loop.time()
            for leg in self.legs():
                if leg.gone:
                    continue
                packets = leg.media.rtp_counters().packets_in
                last_packets, since = seen.get(leg.name, (-1, now))
                if packets != last_packets or not self._sends.get(leg.media, True):
                    seen[leg.name] = (packets, now)
                elif now - since > silence_limit:
                    log.info(
                        "call %s: no media from leg %s for %.0f s, hanging up",
                        self.call_id,
                        leg.name,
                        silence_limit,
                    )
                    await self._hang_up_all(f"no media from {leg.name}")
                    return

    async def _await_ack(self, b_invite_cseq: int) -> None:
        ack = await self.tx.wait_ack()
        b, a = self.b, self.a
        assert b is not None and a is not None and b.dialog.peer is not None
        if b.awaiting_ack:
            # Late offer: A's ACK holds the answer that B's ACK must carry.
            body = b""
            headers: list[tuple[str, str]] = []
            if ack is not None and ack.body:
                try:
                    body = self._anchor(sdp.parse(ack.body), a.media, b.media).encode()
                    headers = [("Content-Type", "application/sdp")]
                except (sdp.SdpError, SdpRejected) as exc:
                    log.info("call %s: unusable SDP in ACK: %s", self.call_id, exc)
            ack_b = b.dialog.create_ack(b_invite_cseq, body=body, headers=headers)
            self.engine.endpoint.send_ack(ack_b, b.dialog.peer)
            b.awaiting_ack = False
            if not body and not self._ended.is_set():
                await self._hang_up_all("no SDP answer in the caller's ACK")
                return
        if ack is None and not self._ended.is_set():
            await self._hang_up_all("no ACK from caller")

    def provisional_to_a(self, response: Response) -> None:
        """Ringing or early media from B, passed on to A (SDP anchored)."""
        if self.tx.final_sent or self.session is None:
            return
        headers = [("Contact", self.engine.contact_for(self.tx.source.transport))]
        body = b""
        if response.body and response.content_type == "application/sdp":
            try:
                early = self._anchor(sdp.parse(response.body), self.session.b, self.session.a)
                offer = self._received.get(self.session.a)
                if offer is not None:
                    keep_telephone_event(early, offer)
                body = early.encode()
                headers.append(("Content-Type", "application/sdp"))
            except (sdp.SdpError, SdpRejected):
                body = b""
        self.tx.respond(response.status, response.reason, headers=headers, body=body)

    # -- in-dialog -------------------------------------------------------------------------

    async def on_request(self, leg: Leg, tx: ServerTransactionHandle) -> None:
        request = tx.request
        status = leg.dialog.handle_request(request)
        if status is not None:
            tx.respond(status)
            return
        method = request.method
        log.debug("call %s: %s from %s", self.call_id, method, leg.name)
        if leg is not self.a and leg is not self.b:
            # A transferor that left the call: only its goodbye is still welcome.
            leg.gone = True
            tx.respond(200 if method == "BYE" else 481)
            return
        if method == "BYE":
            tx.respond(200)
            leg.gone = True
            if self.conference is not None:
                self.conference.leave(leg)
                return
            transfer = self._transfer
            if transfer is not None and leg is transfer.transferor:
                transfer.transferor_left.set()  # the transfer goes on without it
                return
            await self._hang_up_other(leg, f"hung up by {leg.name}")
        elif method == "REFER":
            self._on_refer(leg, tx)
        elif method == "INVITE":
            await self._relay_reinvite(leg, tx)
        elif method in ("INFO", "UPDATE"):
            digit = self._info_digit(leg, tx.request) if method == "INFO" else None
            other = leg.other
            events = self._events_to(other) if other is not None else None
            if self.conference is not None or other is None or other.gone:
                # Nobody to pass it on to: all hear the mixer, or the server is the other.
                tx.respond(200 if method == "INFO" else 501)
            elif digit is not None and events is not None and other is not None:
                # The other party negotiated RFC 4733: the key goes to it in that form.
                tx.respond(200)
                self._spawn(self._send_events(other, events, digit))
            else:
                await self._relay_request(leg, tx)
        elif method == "OPTIONS":
            tx.respond(200, headers=[("Allow", ALLOW)])
        else:
            tx.respond(501, f"{method} not supported in a call", headers=[("Allow", ALLOW)])

    async def _relay_request(self, leg: Leg, tx: ServerTransactionHandle) -> None:
        other = leg.other
        assert other is not None and other.dialog.peer is not None
        headers = [
            (name, value)
            for name, value in tx.request.headers
            if name in ("Content-Type", "Event", "Info-Package")
        ]
        request = other.dialog.create_request(
            tx.request.method, body=tx.request.body, headers=headers
        )
        handle = await self.engine.endpoint.request(request, other.dialog.peer)
        final = await handle.final()
        tx.respond(final.status, final.reason)

    async def _relay_reinvite(self, leg: Leg, tx: ServerTransactionHandle) -> None:
        """A re-INVITE: a hold or resume is answered here (the other party is put on music
        on hold, or back); anything else (codec change, target refresh) is re-offered on
        the other leg."""
        other = leg.other
        assert other is not None and other.dialog.peer is not None
        if not tx.request.body:
            tx.respond(488, "re-INVITE without SDP is not supported")
            return
        try:
            received = sdp.parse(tx.request.body)
            anchored = self._anchored(received, leg.media, other.media)
        except (sdp.SdpError, SdpRejected) as exc:
            tx.respond(488, str(exc)[:100])
            return
        if (
            not anchored.receives
            or self.holding
            or self.conference is not None
            or self.transcoding
            or other.gone
        ):
            self._hold_or_resume(leg, tx, received, anchored)
            return
        self._sends[leg.media] = anchored.sends
        self._received[leg.media] = received
        offer = anchored.description
        request = other.dialog.create_request(
            "INVITE",
            body=offer.encode(),
            headers=[("Content-Type", "application/sdp"), ("Allow", ALLOW)],
        )
        handle = await self.engine.endpoint.request(request, other.dialog.peer)
        try:
            # Once the far end sent a provisional, no transaction timer ends the re-INVITE
            # (RFC 3261 17.1.1.2): without this bound a silent peer would hold it forever.
            async with asyncio.timeout(_REINVITE_TIMEOUT):
                final = await handle.final()
        except TimeoutError:
            handle.cancel()
            tx.respond(408, "No answer to the re-INVITE")
            return
        if not 200 <= final.status < 300:
            tx.respond(final.status, final.reason)
            return
        self._sent[other.media] = offer
        other.dialog.handle_response(final)
        self.engine.endpoint.send_ack(other.dialog.create_ack(request.cseq.seq), other.dialog.peer)
        try:
            answer = self._anchor(sdp.parse(final.body), other.media, leg.media)
        except (sdp.SdpError, SdpRejected) as exc:
            tx.respond(488, str(exc)[:100])
            return
        tx.respond(
            200,
            headers=[
                ("Contact", self.engine.contact_for(tx.source.transport)),
                ("Content-Type", "application/sdp"),
            ],
            body=answer.encode(),
        )

    def _hold_or_resume(
        self,
        leg: Leg,
        tx: ServerTransactionHandle,
        received: sdp.SessionDescription,
        anchored: Anchored,
    ) -> None:
        """Answer a re-offer ourselves: the other party stays in its dialog, unaware, and
        hears music on hold while this one holds (RFC 6337 5: the holder's sendonly or
        inactive is answered recvonly or inactive)."""
        try:
            answer = local_answer(received, anchored.audio, self._sent[leg.media])
        except SdpRejected as exc:
            tx.respond(488, str(exc)[:100])
            return
        # The party's address was taken from its offer; what it will send matters to the
        # media watchdog only while it is not holding (a holding phone may send nothing).
        self._received[leg.media] = received
        self._sends[leg.media] = anchored.sends and anchored.receives
        if anchored.receives:
            self.holding.discard(leg.name)
        else:
            self.holding.add(leg.name)
        self._sent[leg.media] = answer
        tx.respond(
            200,
            headers=[
                ("Contact", self.engine.contact_for(tx.source.transport)),
                ("Content-Type", "application/sdp"),
            ],
            body=answer.encode(),
        )
        self.route_media()
        self.engine.changed(self, "resumed" if anchored.receives else "held")
        log.info(
            "call %s: %s by %s",
            self.call_id,
            "held" if self.holding else "resumed",
            leg.name,
        )

    def route_media(self) -> None:
        """What each party hears given who holds: the other party when nobody holds, music
        when only the other party holds, nothing when it holds itself. In a conference,
        a party that holds is left out of the mix until it resumes."""
        self._stop_transcoding()
        if self.conference is not None:
            for leg in self.legs():
                self.conference.mute(leg, leg.name in self.holding)
            return
        if self.transcoding and not self.holding:
            self._start_transcoding()
            return
        for leg in self.legs():
            assert leg.other is not None
            if not self.holding:
                leg.media.relay()
            elif leg.other.name in self.holding and leg.name not in self.holding:
                self._play_music(leg)
            else:
                leg.media.silence()

    def _start_transcoding(self) -> None:
        for source, target in ((self.a, self.b), (self.b, self.a)):
            assert source is not None and target is not None
            codec = self.playable_codec(target)
            audio = audio_section(self._sent.get(source.media))
            if codec is None or audio is None:
                log.warning("call %s: nothing to transcode to %s", self.call_id, target.name)
                target.media.silence()
                continue
            direction = TranscodedDirection(
                audio.rtpmaps,
                event_payload_type(self._sent.get(source.media)),
                codec,
                self._events_to(target),
                target.media.hear_server(),
                send_rtcp=target.media.send_rtcp,
                reports=self.engine.media.clock.reports,
            )
            source.media.add_listener(direction.packet)
            source.media.add_listener(direction.reception.rtcp, rtcp=True)
            self._transcoders.append((source.media, direction))
        if len(self._transcoders) == 2:
            (_, a_to_b), (_, b_to_a) = self._transcoders
            a_to_b.report_on(b_to_a.reception)
            b_to_a.report_on(a_to_b.reception)

    def _stop_transcoding(self) -> None:
        for side, direction in self._transcoders:
            side.remove_listener(direction.packet)
            side.remove_listener(direction.reception.rtcp, rtcp=True)
            direction.stop()
        self._transcoders.clear()

    def _play_music(self, leg: Leg) -> None:
        codec = self.playable_codec(leg)
        if codec is None:
            log.info("call %s: no codec to play music on hold to %s", self.call_id, leg.name)
            leg.media.silence()
            return
        leg.media.play(self.engine.media.music_on_hold, codec)

    def playable_codec(self, leg: Leg) -> sdp.RtpMap | None:
        """A codec to play sounds to ``leg``'s party in: one of its own SDP that our last
        SDP to it also lists (the negotiated ones), in its own payload numbering."""
        agreed = agreed_codecs(self._received.get(leg.media), self._sent.get(leg.media))
        return next((c for c in agreed if can_encode(c.encoding, c.clock_rate)), None)

    @property
    def on_hold(self) -> bool:
        return bool(self.holding)

    def _measure_quality(self) -> None:
        """Measure the call's quality from both sides' RTCP, in the codec the parties now
        use: once two parties talk, again when a transfer brings in another one (a call
        a menu answered is measured from then on)."""
        assert self.a is not None and self.b is not None
        codec = next(
            iter(agreed_codecs(self._received.get(self.a.media), self._sent.get(self.a.media))),
            None,
        )
        if codec is not None:
            for leg in (self.quality.a, self.quality.b):
                leg.set_codec(codec_for(codec.encoding), codec.clock_rate)
        if self._measuring:
            return
        self._measuring = True
        loop = asyncio.get_running_loop()
        quality = self.quality
        self.a.media.add_listener(lambda data: quality.from_a(data, loop.time()), rtcp=True)
        self.b.media.add_listener(lambda data: quality.from_b(data, loop.time()), rtcp=True)

    # -- digits and feature codes ----------------------------------------------------------

    def _listen_for_digits(self, leg: Leg) -> None:
        """Watch the RFC 4733 events ``leg``'s party sends (they are relayed untouched)."""
        payload_type = event_payload_type(self._sent.get(leg.media))
        if payload_type is None:
            return
        receiver = DtmfEventReceiver(payload_type)

        def listener(data: bytes) -> None:
            # Only the second byte is looked at for the audio packets: this runs per packet.
            if len(data) > 1 and data[1] & 0x7F == payload_type:
                with contextlib.suppress(RtpError):
                    for report in receiver.feed(RtpPacket.parse(data)):
                        if isinstance(report, DigitPressed):
                            self._on_digit(leg, report.digit)
                            if leg.other is not None and self._events_to(leg.other) is None:
                                # The other party only understands SIP INFO (F7).
                                self._spawn(self.send_digits(leg, report.digit))

        leg.media.add_listener(listener)

    def _info_digit(self, leg: Leg, request: Request) -> str | None:
        """The digit a SIP INFO carries, if it is a key press (then seen as one)."""
        content_type = request.content_type or ""
        if content_type.split(";")[0].strip().lower() not in (DTMF_RELAY, DTMF):
            return None
        try:
            digit = parse_info_body(content_type, request.body).digit
        except DtmfError:
            return None
        self._on_digit(leg, digit)
        return digit

    def _events_to(self, leg: Leg) -> int | None:
        """The telephone-event payload type ``leg``'s party receives, if both its SDP and
        ours list one (then digits go to it as RFC 4733 events, else as SIP INFO)."""
        if event_payload_type(self._sent.get(leg.media)) is None:
            return None
        return event_payload_type(self._received.get(leg.media))

    async def _send_events(self, leg: Leg, payload_type: int, digits: str) -> None:
        """Key ``digits`` to ``leg``'s party as RFC 4733 events. They go in the stream it
        hears (the other party's SSRC, sequence and timestamps, RFC 4733 2.1), whose
        audio is held back meanwhile: phones take a second SSRC interleaved with the
        first for a new stream and drop the events as out of order."""
        log.info("call %s: keys %s to %s as RFC 4733 events", self.call_id, digits, leg.name)
        audio = audio_section(self._received.get(leg.media))
        codec = audio.rtpmaps.get(payload_type) if audio is not None else None
        clock_rate = codec.clock_rate if codec is not None else 8000
        stream = RtpSender(payload_type)
        relayed = await self._next_packet_to(leg)
        if relayed is not None:
            stream.ssrc, stream.sequence = relayed.ssrc, (relayed.sequence + 1) & 0xFFFF
            stream.timestamp = (relayed.timestamp + round(clock_rate * 0.02)) & 0xFFFFFFFF
        sender = DtmfEventSender(stream, payload_type, clock_rate=clock_rate)
        leg.media.silence()
        try:
            for digit in digits:
                for packet in sender.packets(digit, _KEY_PRESS_SECONDS):
                    leg.media.send(packet)
                    await asyncio.sleep(0.02)
                await asyncio.sleep(_KEY_PRESS_SECONDS)  # a gap, or two equal keys are one
        finally:
            # The other party's packets come back numbered past the events: it kept
            # sending every 20 ms while they were sent.
            self.route_media()

    async def _next_packet_to(self, leg: Leg) -> RtpPacket | None:
        """The next RTP packet relayed to ``leg``'s party, if one comes soon."""
        source = leg.other
        if source is None or leg.media.hears != "peer":
            return None
        arrived: asyncio.Future[RtpPacket] = asyncio.get_running_loop().create_future()

        def listener(data: bytes) -> None:
            if not arrived.done():
                with contextlib.suppress(RtpError):
                    arrived.set_result(RtpPacket.parse(data))

        source.media.add_listener(listener)
        try:
            async with asyncio.timeout(0.2):
                return await arrived
        except TimeoutError:
            return None
        finally:
            source.media.remove_listener(listener)

    def _on_digit(self, leg: Leg, digit: str) -> None:
        """A key pressed by ``leg``'s party: feature codes are looked for here."""
        if self.application is not None:
            self.application.on_digit(digit)
            return
        now = asyncio.get_running_loop().time()
        keyed, at = self._keyed.get(leg.name, ("", now))
        keyed = (keyed if now - at < _FEATURE_CODE_GAP else "") + digit
        self._keyed[leg.name] = (keyed[-4:], now)
        if leg.party.user_id is None:
            return
        if keyed.endswith(FEATURE_RECORD):
            self._keyed[leg.name] = ("", now)
            self._spawn(self.toggle_recording(leg))
        elif keyed.endswith(FEATURE_CONFERENCE):
            self._keyed[leg.name] = ("", now)
            self._spawn(self._merge_with_other_call(leg))

    async def _merge_with_other_call(self, leg: Leg) -> None:
        """*3: ``leg``'s user merges this call with their other one (one on hold)."""
        user_id = leg.party.user_id
        assert user_id is not None
        others = [
            (call, other_leg)
            for call in self.engine.calls_of_company(self.company.id)
            if call is not self
            for other_leg in [call.leg_of(user_id)]
            if other_leg is not None
        ]
        if len(others) != 1:
            log.info("call %s: *3 needs exactly one other call, not %d", self.call_id, len(others))
            return
        try:
            await merge(self, leg, *others[0])
        except ConferenceError as exc:
            log.info("call %s: cannot merge: %s", self.call_id, exc)

    async def toggle_recording(self, leg: Leg) -> None:
        if self.engine.recordings is not None and self.engine.recordings.is_recording(self):
            await self.stop_recording()
            return
        problem = await self.start_recording(leg)
        if problem is not None:
            log.info("call %s: cannot record: %s", self.call_id, problem)

    async def start_recording(self, leg: Leg) -> str | None:
        """Record the call for ``leg``'s party, announced to both; None, or why not."""
        recordings = self.engine.recordings
        if recordings is None:
            return "recording is not available"
        if self.conference is not None:
            return "a conference cannot be recorded"
        problem = await recordings.start(self, leg.party)
        if problem is None:
            self._announce_recording()
        return problem

    async def stop_recording(self) -> bool:
        recordings = self.engine.recordings
        stopped = recordings is not None and await recordings.stop(self, "user")
        if stopped and self.company.recording_announcement == "voice":
            self._announce("recording_stopped")
        return stopped

    def _announce_recording(self) -> None:
        """Both parties must know they are recorded: a beep, or a sentence in the
        company's language, as the company chose."""
        if self.company.recording_announcement == "voice":
            self._announce("recording_started")
        else:
            self._announce(None)

    def _announce(self, prompt: str | None) -> None:
        """Play ``prompt`` (None: the beep) to both parties, then back to what each heard;
        a party already hearing a sound (music on hold) is left to it."""
        media = self.engine.media
        sound = media.beep if prompt is None else media.prompts.sound(prompt, self.company.language)
        self._stop_transcoding()
        for leg in self.legs():
            codec = self.playable_codec(leg)
            if codec is not None and leg.media.hears != "sound":
                leg.media.play(sound, codec, loop=False, then=self.route_media)

    def recording_sources(
        self,
    ) -> (
        tuple[tuple[MediaSide, dict[int, sdp.RtpMap]], tuple[MediaSide, dict[int, sdp.RtpMap]]]
        | None
    ):
        """Each party's relay side with the codecs it sends (our numbering: a party sends
        with the payload types of the SDP it received from us); None if one cannot be
        decoded."""
        if self.a is None or self.b is None:
            return None
        a, b = self.source_of(self.a), self.source_of(self.b)
        if a is None or b is None:
            return None
        return a, b

    def source_of(self, leg: Leg) -> tuple[MediaSide, dict[int, sdp.RtpMap]] | None:
        """``leg``'s relay side with the codecs its party sends (our numbering: a party
        sends with the payload types of the SDP it received from us); None if they
        cannot be decoded."""
        audio = audio_section(self._sent.get(leg.media))
        codecs = audio.rtpmaps if audio is not None else {}
        if not any(can_decode(codec) for codec in codecs.values()):
            return None
        return leg.media, codecs

    # -- call control on behalf of a party (the API's actions) ------------------------------

    def user_ids(self) -> set[int]:
        """Every user this call concerns: caller, callee, whoever joined or left it, and
        a transfer's target while it rings."""
        parties = [self.caller, self.callee, *(leg.party for leg in self.all_legs())]
        if self._transfer is not None:
            parties.append(self._transfer.target.callee)
        return {party.user_id for party in parties if party.user_id is not None}

    def caller_shown_to(self, user_id: int) -> Party | None:
        """Who calls ``user_id`` while their phones ring for this call (as the callee, or
        as a blind transfer's target); None when they do not ring for it."""
        if self.answered_at is None and self.callee.user_id == user_id:
            return self.shown_caller
        transfer = self._transfer
        if (
            transfer is not None
            and transfer.forking is not None
            and transfer.target.callee.user_id == user_id
        ):
            return transfer.target.caller or transfer.transferee.party
        return None

    def leg_of(self, user_id: int) -> Leg | None:
        """The leg of the user ``user_id``, if they are a party of this answered call."""
        return next(
            (leg for leg in self.legs() if leg.party.user_id == user_id and not leg.gone), None
        )

    async def hold(self, leg: Leg) -> bool:
        """Put the call on hold for ``leg``'s party: its phone is re-INVITEd to inactive
        and the other party hears music; False if the phone refused."""
        return await self._set_holding(leg, holding=True)

    async def resume(self, leg: Leg) -> bool:
        return await self._set_holding(leg, holding=False)

    async def _set_holding(self, leg: Leg, *, holding: bool) -> bool:
        last = self._sent.get(leg.media)
        if last is None or (leg.name in self.holding) == holding:
            return last is not None
        description = sdp.copy_description(last)
        audio = audio_section(description)
        if audio is None:
            return False
        audio.direction = sdp.Direction.INACTIVE if holding else sdp.Direction.SENDRECV
        if not await self._reoffer(leg, description):
            return False
        if holding:
            self.holding.add(leg.name)
        else:
            self.holding.discard(leg.name)
        self._sends[leg.media] = not holding
        self.route_media()
        self.engine.changed(self, "held" if holding else "resumed")
        log.info("call %s: %s by %s", self.call_id, "held" if holding else "resumed", leg.name)
        return True

    async def hang_up(self, leg: Leg) -> None:
        """End the call for everyone, as ``leg``'s party asked; in a conference, only
        ``leg``'s party leaves."""
        if self.conference is None:
            await self._hang_up_all(f"hung up by {leg.name}")
            return
        await self._send_bye(leg)
        if self.conference is not None:
            self.conference.leave(leg)

    # -- conference (F15, conference.py) ---------------------------------------------------

    @property
    def transferring(self) -> bool:
        return self._transfer is not None

    def mix_codecs(self, leg: Leg) -> tuple[dict[int, sdp.RtpMap], sdp.RtpMap] | None:
        """What ``leg``'s party sends (our payload numbering) and the codec to send it a
        mix in; None when either cannot be mixed."""
        audio = audio_section(self._sent.get(leg.media))
        receives = audio.rtpmaps if audio is not None else {}
        codec = self.playable_codec(leg)
        if codec is None or not any(can_decode(c) for c in receives.values()):
            return None
        return receives, codec

    async def leave_for_conference(self, leg: Leg) -> None:
        """``leg``'s party (the user who merged) leaves this call for the conference."""
        leg.media.silence()
        self.holding.discard(leg.name)
        await self._send_bye(leg)

    def drop_from_conference(self, leg: Leg) -> None:
        """``leg``'s party is the last one left in the conference: hung up."""
        if self.conference is not None:
            self.conference.leave(leg)
        self._spawn(self._send_bye(leg))

    def end_in_conference(self, reason: str) -> None:
        """None of this call's parties is in the conference any more."""
        if not self._ended.is_set():
            self._end(reason)

    async def send_digits(self, leg: Leg, digits: str) -> None:
        """Key ``digits`` to the other party on behalf of ``leg``'s: RFC 4733 events if
        it negotiated them, else SIP INFO (one digit per request, as phones do)."""
        other = leg.other
        if other is None or other.dialog.peer is None or other.gone:
            return
        events = self._events_to(other)
        if events is not None:
            await self._send_events(other, events, digits)
            return
        for digit in digits:
            request = other.dialog.create_request(
                "INFO",
                body=build_dtmf_relay(digit),
                headers=[("Content-Type", DTMF_RELAY)],
            )
            handle = await self.engine.endpoint.request(request, other.dialog.peer)
            async with asyncio.timeout(BYE_TIMEOUT):
                await handle.final()

    # -- attended transfer -----------------------------------------------------------------

    async def attended_transfer(self, leg: Leg, other_call: Call, other_leg: Leg) -> bool:
        """``leg``'s party, in this call and (as ``other_leg``) in ``other_call``, leaves
        both and connects the two parties it was talking to (F13). False if the other
        call's party's phone refused."""
        joined = await self._join_either_way(leg, other_call, other_leg)
        if joined is None:
            return False
        await self._leave_joined(joined, leg, other_call, other_leg)
        return True

    async def _leave_joined(self, joined: Call, leg: Leg, other_call: Call, other_leg: Leg) -> None:
        """After a join, the user leaves the call that took a party in (``joined``) and
        ends the one that lost it."""
        if joined is self:
            await asyncio.gather(self._send_bye(leg), other_call.hang_up(other_leg))
        else:
            await asyncio.gather(other_call._send_bye(other_leg), self.hang_up(leg))

    async def _join_either_way(self, leg: Leg, other_call: Call, other_leg: Leg) -> Call | None:
        """Join the party of this call and the other call's, ``leg``'s party (``other_leg``
        there) leaving both: the call the other party moved into, or None. A browser stays
        where it is and the phone moves to it: a browser's media cannot move to other
        ports without a new DTLS association."""
        stays, moving = leg.other, other_leg.other
        if stays is None or moving is None:
            return None
        if any(call.conference or call.transcoding for call in (self, other_call)):
            return None
        joined: Call | None = self
        if other_call.faces_browser(moving):
            if self.faces_browser(stays):
                joined = self if self._adopt(leg, other_call, other_leg) else None
            else:
                joined = other_call if await other_call._join(other_leg, self, leg) else None
        elif not await self._join(leg, other_call, other_leg):
            joined = None
        if joined is not None:
            log.info(
                "call %s: %s joined with %s of call %s in call %s",
                self.call_id,
                stays.name,
                moving.name,
                other_call.call_id,
                joined.call_id,
            )
        return joined

    def _adopt(self, leg: Leg, other_call: Call, other_leg: Leg) -> bool:
        """The other call's party moves into this call in place of ``leg`` with its relay
        side: the two calls' sessions exchange that side and ``leg``'s, so the party keeps
        its ports (a browser its ICE and DTLS association) and needs no re-INVITE; the
        party that stays is re-offered only if the two spoke different codecs."""
        stays, moving = leg.other, other_leg.other
        if stays is None or moving is None:
            return False
        offer = other_call._sent.get(moving.media)
        answer = other_call._received.get(moving.media)
        if offer is None or answer is None or self.session is None or other_call.session is None:
            return False
        self.session.exchange(leg.media, other_call.session, moving.media)
        self._hand_over(leg.media, None)
        browser = other_call._browsers.pop(moving.media, None)
        if browser is not None:
            browser.on_failure = self._webrtc_failed
            self._browsers[moving.media] = browser
        other_call.let_go(moving)
        self._take_place(
            leg,
            moving.dialog,
            moving.party,
            offer=offer,
            answer=answer,
            anchored=self._anchored(answer, moving.media, stays.media),
            media=moving.media,
        )
        if stays.other is not None:
            self._spawn(self._rename_to(stays.other))
        return True

    async def _join(self, leg: Leg, other_call: Call, other_leg: Leg) -> bool:
        """The other call's party (a phone) moves into this call in place of ``leg``: it is
        re-INVITEd to this call's media ports with this call's remaining party's SDP;
        ``leg``'s party is then out of this call (not yet hung up in either)."""
        stays = leg.other
        moving = other_leg.other
        if stays is None or moving is None:
            return False
        described = self._received.get(stays.media)
        last_to_moving = other_call._sent.get(moving.media)
        if described is None or last_to_moving is None:
            return False
        try:
            offer = anchor(self._plain(described, stays.media), stays.media, leg.media)
        except SdpRejected:
            return False
        offer.description.origin = replace(
            last_to_moving.origin, version=last_to_moving.origin.version + 1
        )
        final = await self._reinvite(moving, offer.description)
        if final is None:
            return False
        try:
            answer = sdp.parse(final.body)
            if is_webrtc(answer):
                raise SdpRejected("a phone's answer cannot be WebRTC")
            self._hand_over(leg.media, None)
            anchored = self._anchored(answer, leg.media, stays.media)
        except (sdp.SdpError, SdpRejected):
            return False
        # The moving party is this call's now: the other call lets go of it without a BYE.
        other_call.let_go(moving)
        self._take_place(
            leg,
            moving.dialog,
            moving.party,
            offer=offer.description,
            answer=answer,
            anchored=anchored,
        )
        return True

    def _take_place(
        self,
        leaving: Leg,
        dialog: Dialog,
        party: Party,
        *,
        offer: sdp.SessionDescription,
        answer: sdp.SessionDescription,
        anchored: Anchored,
        media: MediaSide | None = None,
    ) -> None:
        """A new party (its dialog, the SDP we offered it and its answer) takes the place
        of ``leaving``, on its relay ports or on ``media`` (a side it brought), facing the
        party that stays."""
        stays = leaving.other
        assert stays is not None
        joined = Leg(next(self._leg_names), dialog, media or leaving.media, party)
        self._sent[joined.media] = offer
        self._received[joined.media] = answer
        self._sends[joined.media] = anchored.sends
        if leaving is self.a:
            self.a = joined
        else:
            self.b = joined
        joined.other, stays.other, leaving.other = stays, joined, None
        self._former_legs.append(leaving)
        self.engine.register_leg(self, joined)
        self._listen_for_digits(joined)
        self.holding.discard(leaving.name)
        self.transferred_to.append(party)
        if not same_codec(
            (answer, offer), (self._received.get(stays.media), self._sent.get(stays.media))
        ):
            # The new party chose another of the staying party's codecs: that one must
            # switch too, or the relay would carry audio it cannot decode.
            self._spawn(self._reoffer(stays, anchored.description))
        self.route_media()
        self._measure_quality()
        self.engine.changed(self, "transferred")

    def let_go(self, leg: Leg) -> None:
        """``leg`` moved to another call: this one ends without sending it a BYE."""
        leg.gone = True

    # -- blind transfer (RFC 3515) -------------------------------------------------------

    def _on_refer(self, leg: Leg, tx: ServerTransactionHandle) -> None:
        """``leg``'s party asks us to connect the other party to the Refer-To target, then
        leaves (a blind transfer). Refused at once when the target is not callable."""
        refer_to = tx.request.headers.get("Refer-To")
        if refer_to is None:
            tx.respond(400, "Missing Refer-To")
            return
        try:
            target = Address.parse(refer_to)
        except SipSyntaxError:
            tx.respond(400, "Bad Refer-To")
            return
        subscribed = (tx.request.headers.get("Refer-Sub") or "true").strip().lower() != "false"
        replaces = next(
            (value for name, value in target.uri.headers.items() if name.lower() == "replaces"),
            None,
        )
        if replaces is not None:
            self._on_refer_replaces(leg, tx, replaces, subscribed)
            return
        refused = self.transfer(leg, target.uri.user or "", subscribed=subscribed, accept=tx)
        if refused is not None:
            tx.respond(refused.status, refused.reason)

    def _on_refer_replaces(
        self, leg: Leg, tx: ServerTransactionHandle, replaces: str, subscribed: bool
    ) -> None:
        """An attended transfer from a phone (RFC 5589 7): ``leg``'s party names, in
        Replaces (RFC 3891), its dialog of another call; the parties of both calls are
        joined as with the call-control action, and the phone leaves both."""
        call_id, _, params = replaces.partition(";")
        tags = dict(
            param.strip().partition("=")[::2] for param in params.split(";") if "=" in param
        )
        found = self.engine.find_dialog(
            call_id.strip(), tags.get("to-tag", ""), tags.get("from-tag", "")
        )
        if found is None or found[0] is self:
            tx.respond(481, "No such dialog to replace")
            return
        other_call, other_leg = found
        if (
            other_call.company.id != self.company.id
            or other_leg.party.user_id is None
            or other_leg.party.user_id != leg.party.user_id
        ):
            # Only one's own calls can be joined: a dialog of someone else's is not ours.
            tx.respond(403, "The replaced dialog is not the transferor's")
            return
        tx.respond(202, headers=[] if subscribed else [("Refer-Sub", "false")])
        self._spawn(self._run_attended_transfer(leg, other_call, other_leg, subscribed))

    async def _run_attended_transfer(
        self, leg: Leg, other_call: Call, other_leg: Leg, subscribed: bool
    ) -> None:
        await self._send_notify(leg, subscribed, "100 Trying", final=False)
        joined = await self._join_either_way(leg, other_call, other_leg)
        if joined is None:
            await self._send_notify(leg, subscribed, "488 Not Acceptable Here", final=True)
            return
        await self._send_notify(leg, subscribed, "200 OK", final=True)
        await self._leave_joined(joined, leg, other_call, other_leg)

    def transfer(
        self,
        leg: Leg,
        number: str,
        *,
        subscribed: bool = False,
        accept: ServerTransactionHandle | None = None,
    ) -> Refused | None:
        """Blind-transfer the other party of ``leg`` to ``number`` on behalf of ``leg``'s
        party; why not, or None once under way (``accept``, a REFER, then gets its 202)."""
        other = leg.other
        if self.conference is not None:
            return Refused(403, "A conference cannot be transferred")
        if self.transcoding:
            return Refused(488, "A transcoded call cannot be transferred yet")
        if self._transfer is not None or other is None:
            return Refused(491, "A transfer is already in progress")
        resolve = self.engine.transfer_targets
        if leg.party.user_id is None or resolve is None:
            # A carrier's caller must not make the company call anywhere it likes.
            return Refused(403, "Only the company's users can transfer")
        resolved = resolve(self.company, leg.party, number)
        if isinstance(resolved, Refused):
            return resolved
        if not resolved.destinations:
            return Refused(480, "The transfer target is not reachable")
        if accept is not None:
            accept.respond(202, headers=[] if subscribed else [("Refer-Sub", "false")])
        self.transfer_to(leg, resolved, subscribed=subscribed)
        return None

    def transfer_to(
        self, leg: Leg, target: TransferTarget, *, subscribed: bool = False
    ) -> Transfer:
        """Blind-transfer the other party of ``leg`` to ``target``, resolved already;
        the transfer's ``outcome`` tells how it ended."""
        other = leg.other
        assert other is not None and self._transfer is None
        self._transfer = transfer = Transfer(leg, other, target, subscribed)
        loop = asyncio.get_running_loop()
        self._background(loop.create_task(self._run_transfer(transfer)))
        return transfer

    async def _run_transfer(self, transfer: Transfer) -> None:
        transferor, transferee = transfer.transferor, transfer.transferee
        target = transfer.target
        self._notify_transferor(transfer, "100 Trying", final=False)
        transferor.media.silence()
        self._play_music(transferee)
        outcome = ForkOutcome("bad_sdp")
        offer: sdp.SessionDescription | None = None
        with contextlib.suppress(SdpRejected):
            # The target gets the transferee's own SDP, through the transferor's ports.
            described = self._received.get(transferee.media)
            if described is not None:
                plain = self._plain(described, transferee.media)
                offer = anchor(plain, transferee.media, transferor.media).description
        browser_offer: bytes | None = None
        if offer is not None and any(is_browser(d.peer) for d in target.destinations):
            # A browser target gets the transferor's ports with an ICE and DTLS end of
            # its own; the transferor's, if it is a browser, lasts until the answer.
            transfer.browser = BrowserEnd(
                transferor.media, self.engine.media.certificate, self._webrtc_failed
            )
            browser_offer = transfer.browser.to_browser(offer).encode()
        if offer is not None:
            offered = offer
            forking = Forking(
                self.engine,
                self.company,
                target.caller or transferee.party,
                target.destinations,
                offered.encode(),
                on_answer=lambda response, dialog: self._transfer_answered(
                    transfer, offered, response, dialog
                ),
                identity_header=target.direction == "outbound",
                browser_offer=browser_offer,
                api_call_id=self.call_id,
            )
            transfer.forking = forking
            self.engine.changed(self, "transferring")
            outcome = await forking.run()
            transfer.forking = None
        self._transfer = None
        if outcome.kind == "answered":
            transfer.outcome.set_result("answered")
            if transferor.gone:  # the server's own leg: nobody to tell or to hang up
                return
            await self._notify_transferor(transfer, "200 OK", final=True)
            # The transferor usually hangs up on the NOTIFY; if it does not, we do.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await transfer.transferor_left.wait()
            await self._send_bye(transferor)
            return
        status = _transfer_failure(outcome)
        transfer.outcome.set_result(status)
        log.info(
            "call %s: transfer by %s to %s failed: %s",
            self.call_id,
            transferor.name,
            target.callee.number,
            status,
        )
        if self._ended.is_set():
            return
        if transfer.transferor_left.is_set():
            await self._hang_up_all(f"transfer to {target.callee.number} failed: {status}")
            return
        # Back to the transferor, as it was (RFC 5589 6: it may retrieve the call).
        await self._notify_transferor(transfer, status, final=True)
        self.route_media()
        self.engine.changed(self, "transfer_failed")

    def _transfer_answered(
        self,
        transfer: Transfer,
        offer: sdp.SessionDescription,
        response: Response,
        dialog: Dialog,
    ) -> bool:
        """The target answered: it takes the transferor's place (and its media ports)."""
        transferor, transferee = transfer.transferor, transfer.transferee
        assert dialog.peer is not None
        self.engine.endpoint.send_ack(dialog.create_ack(response.cseq.seq), dialog.peer)
        try:
            answer = sdp.parse(response.body)
            browser: BrowserEnd | None = None
            if is_webrtc(answer):
                # A browser answered: its end is the one its offer was made with.
                if transfer.browser is None:
                    raise SdpRejected("a WebRTC answer to a plain offer")
                browser = transfer.browser
                browser.check(answer)
        except (sdp.SdpError, SdpRejected) as exc:
            log.info("call %s: unusable SDP from the transfer target: %s", self.call_id, exc)
            self._background(asyncio.get_running_loop().create_task(self._send_bye_to(dialog)))
            return False
        self._hand_over(transferor.media, browser)
        anchored = self._anchored(answer, transferor.media, transferee.media)
        if browser is not None:
            offer = browser.to_browser(offer)
        if transfer.target.direction == "outbound":
            self.count_external()
        target = transfer.target.callee
        self._take_place(transferor, dialog, target, offer=offer, answer=answer, anchored=anchored)
        log.info(
            "call %s: %s transferred %s to %s",
            self.call_id,
            transferor.name,
            transferee.name,
            transfer.target.callee.number,
        )
        return True

    async def _reoffer(self, leg: Leg, description: sdp.SessionDescription) -> bool:
        """Re-INVITE ``leg``'s party with ``description``, as a new version of our session
        with it; whether it accepted."""
        last = self._sent.get(leg.media)
        if last is not None:
            description.origin = replace(last.origin, version=last.origin.version + 1)
        final = await self._reinvite(leg, description)
        if final is None:
            return False
        self._sent[leg.media] = description
        with contextlib.suppress(sdp.SdpError, SdpRejected):
            answer = sdp.parse(final.body)
            other = leg.other.media if leg.other is not None else leg.media
            self._sends[leg.media] = self._anchored(answer, leg.media, other).sends
            self._received[leg.media] = answer
        return True

    async def _reinvite(self, leg: Leg, description: sdp.SessionDescription) -> Response | None:
        """Send ``leg``'s party a re-INVITE with ``description``: its 2xx (acknowledged), or
        None when it refused or did not answer."""
        assert leg.dialog.peer is not None
        request = leg.dialog.create_request(
            "INVITE",
            body=description.encode(),
            headers=[("Content-Type", "application/sdp"), ("Allow", ALLOW)],
        )
        handle = await self.engine.endpoint.request(request, leg.dialog.peer)
        try:
            async with asyncio.timeout(_REINVITE_TIMEOUT):
                final = await handle.final()
        except TimeoutError:
            handle.cancel()
            log.warning("call %s: no answer to our re-INVITE of %s", self.call_id, leg.name)
            return None
        if not 200 <= final.status < 300:
            log.warning(
                "call %s: %s refused our re-INVITE: %d", self.call_id, leg.name, final.status
            )
            return None
        leg.dialog.handle_response(final)
        self.engine.endpoint.send_ack(leg.dialog.create_ack(request.cseq.seq), leg.dialog.peer)
        return final

    def _notify_transferor(
        self, transfer: Transfer, status: str, *, final: bool
    ) -> asyncio.Task[None]:
        """Tell the transferor how its REFER is doing (a message/sipfrag NOTIFY)."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            self._send_notify(transfer.transferor, transfer.subscribed, status, final)
        )
        self._background(task)
        return task

    async def _rename_to(self, leg: Leg) -> None:
        """Tell a browser whose dialog moved into this call the call's id in the API (a
        body-less UPDATE, RFC 3311), so that the app acts on the call it is now in."""
        await self._tell(leg, "UPDATE", [(API_CALL_ID_HEADER, self.call_id)])

    async def _send_notify(self, leg: Leg, subscribed: bool, status: str, final: bool) -> None:
        if not subscribed or leg.gone:
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        headers = [
            ("Event", "refer"),
            ("Subscription-State", state),
            ("Content-Type", "message/sipfrag;version=2.0"),
        ]
        await self._tell(leg, "NOTIFY", headers, f"SIP/2.0 {status}\r\n".encode())

    async def _tell(
        self, leg: Leg, method: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> None:
        """Send ``leg``'s party an in-dialog request it may refuse or miss: a failure is
        logged, not the call's."""
        if leg.dialog.peer is None:
            return
        request = leg.dialog.create_request(method, body=body, headers=headers)
        try:
            handle = await self.engine.endpoint.request(request, leg.dialog.peer)
            async with asyncio.timeout(BYE_TIMEOUT):
                await handle.final()
        except Exception:
            log.info("call %s: %s to %s failed", self.call_id, method, leg.name)

    # -- tear-down -------------------------------------------------------------------------

    async def _hang_up_other(self, leg: Leg, reason: str) -> None:
        if self._ended.is_set():
            return
        self._end(reason)
        if leg.other is not None:
            await self._send_bye(leg.other)

    async def _hang_up_all(self, reason: str = "error") -> None:
        if self._ended.is_set():
            return
        self._end(reason)
        await asyncio.gather(*(self._send_bye(leg) for leg in self.legs()))

    def _end(self, reason: str) -> None:
        self._end_reason = reason
        self._ended.set()
        if self._transfer is not None and self._transfer.forking is not None:
            self._transfer.forking.cancel()

    async def _send_bye(self, leg: Leg) -> None:
        if not leg.gone:
            leg.gone = True
            await self._send_bye_to(leg.dialog, leg.name)

    async def _send_bye_to(self, dialog: Dialog, name: str = "B") -> None:
        if dialog.peer is None:
            return
        try:
            handle = await self.engine.endpoint.request(dialog.create_request("BYE"), dialog.peer)
            async with asyncio.timeout(BYE_TIMEOUT):
                await handle.final()
        except Exception:
            log.warning("BYE to leg %s of call %s failed", name, self.call_id)


def _no_common_codec(outcome: ForkOutcome) -> bool:
    """Every callee refused the offer's codecs (RFC 3261 21.4.26, 21.6.4)."""
    return bool(outcome.failures) and all(
        response.status in (415, 488, 606) for response in outcome.failures
    )


def _fallback_reason(outcome: ForkOutcome) -> str:
    """Why the callee could not take the call, for the record of a call voicemail took."""
    _, reason, busy = most_telling(outcome.failures)
    return "busy" if busy else f"unavailable ({reason})"


def _transfer_failure(outcome: ForkOutcome) -> str:
    """The sipfrag status line telling a transferor why its transfer failed."""
    if outcome.kind == "failed" and outcome.failures:
        status, reason, _ = most_telling(outcome.failures)
        return f"{status} {reason}"
    return {
        "timeout": "480 No answer",
        "cancelled": "487 Request Terminated",
    }.get(outcome.kind, "488 Not Acceptable Here")
