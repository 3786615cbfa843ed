"""Click-to-call: the server rings the user's devices; once one answers, the call goes on
as if that device had dialled the number (routing, policy, the callee's status, the
call log: everything a call from the phone gets).

While the devices ring, the call is a ``Dialling``: the user sees it and may cancel it
through the API; if no device takes it, its record says why.

RFC 3725 calls this third-party call control. The device gets the server's own offer
(the relay's ports, every codec the server handles), so it is answered and acknowledged
at once and never waits for the callee's SDP; its answer then stands for the caller's
offer to the callee, cut down to the one codec it sends with: relayed untouched (or
transcoded if the callee has none of it). The user's web app is offered the same ports
in WebRTC (ICE-lite, DTLS-SRTP) with the call's id in the API, and the call takes over
that WebRTC end if the app answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nuage.media import sdp
from nuage.media.engine import MediaSession
from nuage.media.player import can_encode
from nuage.pbx.browser_ends import BrowserEnd
from nuage.pbx.call_engine import CallEngine
from nuage.pbx.calls import CallerTransaction
from nuage.pbx.dialing import (
    ALLOW,
    Destination,
    Forking,
    ForkOutcome,
    Party,
    is_browser,
    new_call_id,
)
from nuage.pbx.offer_answer import SdpRejected, audio_section, own_offer, sending_codec_only
from nuage.pbx.originated import Dialling, OriginatedInvite
from nuage.sip.dialog import Dialog
from nuage.sip.endpoint import ServerTransactionHandle
from nuage.sip.message import URI, Address, Request, Response
from nuage.store.models import Company, User

log = logging.getLogger(__name__)


class NoDeviceError(Exception):
    """The user has no registered device to ring."""


DeviceFinder = Callable[[Company, User], list[Destination]]
CallPlacer = Callable[[CallerTransaction, Company, User], Awaitable[None]]


class ClickToCall:
    def __init__(self, engine: CallEngine, devices: DeviceFinder, place: CallPlacer) -> None:
        self._engine = engine
        self._devices = devices
        self._place = place
        # Answered devices whose call is not answered yet, by their dialog (Call-ID, our
        # tag): their in-dialog requests come here until the call has its legs.
        self._waiting: dict[tuple[str, str], OriginatedInvite] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def dial(self, company: Company, user: User, target: str) -> str:
        """Ring the user's devices, then call ``target`` from the one that answers; the
        call's id. NoDeviceError when nothing of theirs is registered; PortsExhaustedError
        when the server has no media ports left."""
        devices = self._devices(company, user)
        if not devices:
            raise NoDeviceError(f"no device of {user.extension} is registered")
        session = await self._engine.media.create_session()
        answered: list[Dialog] = []
        offer = own_offer(session.a)
        browser: BrowserEnd | None = None
        if any(is_browser(device.peer) for device in devices):
            # The user's web app is offered the same ports with an ICE and DTLS end.
            browser = BrowserEnd(session.a, self._engine.media.certificate, _webrtc_failed)

        def on_answer(response: Response, dialog: Dialog) -> bool:
            assert dialog.peer is not None
            self._engine.endpoint.send_ack(dialog.create_ack(response.cseq.seq), dialog.peer)
            answered.append(dialog)
            try:
                # Its answer stands for its offer to the target: one codec, the one it
                # sends with, so that the target cannot choose another.
                described: sdp.SessionDescription | None = sending_codec_only(
                    sdp.parse(response.body)
                )
            except sdp.SdpError:
                described = None
            body = response.body if described is None else described.encode()
            dialling.invite = invite = OriginatedInvite(
                self._engine.endpoint,
                _as_if_dialled(company, user, target, body, dialog),
                dialog,
                session,
                on_ringing=lambda: self._ring_back(session, body),
                on_settled=self._settled,
            )
            self._waiting[(dialog.call_id, dialog.local_tag)] = invite
            if described is None:
                return False
            if browser is not None and is_browser(dialog.peer):
                try:
                    # Its first SDP starts the side's WebRTC port: ICE, DTLS, SRTP.
                    browser.from_browser(described)
                except SdpRejected:
                    return False
                invite.browser = browser
            return True

        # The device shows whom it will call; the web app learns the call's id.
        shown = Party(target, f"→ {target}")
        call_id = new_call_id()
        forks = Forking(
            self._engine,
            company,
            shown,
            devices,
            offer.encode(),
            on_answer=on_answer,
            browser_offer=None if browser is None else browser.to_browser(offer).encode(),
            api_call_id=call_id,
            call_id=call_id,
        )
        dialling = Dialling(company, user.id, target, forks)
        self._engine.dialling_started(dialling)
        task = asyncio.get_running_loop().create_task(self._run(dialling, session, answered, user))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return dialling.call_id

    async def _run(
        self, dialling: Dialling, session: MediaSession, answered: list[Dialog], user: User
    ) -> None:
        outcome = await dialling.forks.run()
        invite = dialling.invite
        if outcome.kind != "answered" or invite is None or dialling.cancelled:
            if invite is not None:
                self._settled(invite)
            log.info("click-to-call: no device of %s took it (%s)", user.extension, outcome.kind)
            self._engine.dialling_over(dialling)
            # An answer that crossed the user's cancel is no answer.
            taken = ForkOutcome("cancelled") if dialling.cancelled else outcome
            self._record(dialling, user, *_not_taken(taken))
            for dialog in answered:
                await self._hang_up(dialog)
            await session.close()
            return
        try:
            await self._place(invite, dialling.company, user)
        finally:
            # The call took the dialling over, or placing it failed and recorded why.
            self._engine.dialling_over(dialling)
            self._settled(invite)
            if not invite.final_sent:
                await session.close()

    def _record(self, dialling: Dialling, user: User, outcome: str, reason: str) -> None:
        self._engine.recorder.refused(
            dialling.company.id,
            dialling.call_id,
            direction="internal",
            caller=user.extension,
            callee=dialling.target.number,
            outcome=outcome,
            reason=reason,
            caller_name=user.name,
            caller_user_id=user.id,
            started_at=dialling.started_at,
        )

    def _ring_back(self, session: MediaSession, device_sdp: bytes) -> None:
        """The device hears the ringing tone while the target rings (until the call
        connects them, or hangs up)."""
        audio = audio_section(sdp.parse(device_sdp))
        codecs = audio.codecs if audio is not None else []
        codec = next((c for c in codecs if can_encode(c.encoding, c.clock_rate)), None)
        if codec is not None:
            session.a.play(self._engine.media.ringback, codec)

    def _settled(self, invite: OriginatedInvite) -> None:
        self._waiting.pop((invite.dialog.call_id, invite.dialog.local_tag), None)

    async def _hang_up(self, dialog: Dialog) -> None:
        assert dialog.peer is not None
        bye = await self._engine.endpoint.request(dialog.create_request("BYE"), dialog.peer)
        await bye.final()

    def handle_in_dialog(self, tx: ServerTransactionHandle) -> bool:
        """A request in the dialog of a device waiting for its callee; False for others."""
        request = tx.request
        invite = self._waiting.get((request.call_id, request.to.tag or ""))
        if invite is None:
            return False
        if request.method == "BYE":
            tx.respond(200)
            self._settled(invite)
            invite.mark_cancelled()
        elif request.method == "INVITE":
            tx.respond(491, "The call is being set up")
        else:
            tx.respond(200 if request.method == "INFO" else 405, headers=[("Allow", ALLOW)])
        return True


def _not_taken(outcome: ForkOutcome) -> tuple[str, str]:
    """The outcome and reason a click-to-call that no device took is recorded with."""
    if outcome.kind == "cancelled":
        return "cancelled", "caller hung up"
    if outcome.kind == "timeout":
        return "cancelled", "not answered on the caller's phones"
    if outcome.kind == "failed":
        refusals = ", ".join(str(r.status) for r in outcome.failures)
        return "failed", f"refused by the caller's phones: {refusals}"
    return "failed", "bad SDP from the caller's phone"


def _webrtc_failed(reason: str) -> None:
    # Before the call takes the browser's end over: the ringing tone is all it carries.
    log.info("click-to-call: WebRTC to the user's browser failed: %s", reason)


def _as_if_dialled(
    company: Company, user: User, target: str, body: bytes, dialog: Dialog
) -> Request:
    """The INVITE the device would have sent to dial ``target``, with its SDP."""
    request = Request("INVITE", URI("sip", target, host=company.domain))
    headers = request.headers
    own = Address(URI("sip", user.extension, host=company.domain), user.name or None)
    own.params["tag"] = dialog.remote_tag
    headers.add(
        "Via",
        f"SIP/2.0/{dialog.peer.transport.upper() if dialog.peer else 'UDP'} "
        f"originated.invalid;branch=z9hG4bK{dialog.local_tag}",
    )
    headers.add("From", str(own))
    headers.add("To", str(Address(URI("sip", target, host=company.domain))))
    headers.add("Call-ID", dialog.call_id)
    headers.add("CSeq", "1 INVITE")
    headers.add("Contact", f"<{dialog.remote_target}>")
    headers.add("Content-Type", "application/sdp")
    request.body = body
    return request
