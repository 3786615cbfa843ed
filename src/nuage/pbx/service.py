"""The PBX as the SIP endpoint's transaction user: every request lands here first."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from nuage.pbx.auth import UserAuthenticator
from nuage.pbx.call_engine import CallEngine
from nuage.pbx.calls import CallerTransaction, TransferTarget
from nuage.pbx.click_to_call import ClickToCall
from nuage.pbx.dialing import ALLOW, Destination, Party, trunk_destination
from nuage.pbx.directory import Directory
from nuage.pbx.ivr import IvrApplication, MenuTarget
from nuage.pbx.location import LocationService
from nuage.pbx.numbering import VOICEMAIL_DEPOSIT_PREFIX
from nuage.pbx.records import CallRecorder
from nuage.pbx.registrar import Registrar
from nuage.pbx.routing import (
    VOICEMAIL_ACCESS_CODE,
    Internal,
    Refused,
    Route,
    ToGroup,
    ToIvr,
    ToMailbox,
    ToTrunk,
    ToUser,
    caller_id_of,
    route_from_trunk,
    route_from_user,
)
from nuage.pbx.statuses import (
    VOICEMAIL_REASON,
    ForwardOutside,
    RefuseCall,
    RingUser,
    ToVoicemail,
    call_target,
    takes_group_calls,
)
from nuage.pbx.subscriptions import SubscriptionManager
from nuage.pbx.voicemail.service import Voicemail
from nuage.sip.endpoint import ServerTransactionHandle
from nuage.sip.message import URI, Address
from nuage.store.models import Company, Group, IvrMenu, Trunk, User

log = logging.getLogger(__name__)


class PbxService:
    def __init__(
        self,
        *,
        directory: Directory,
        location: LocationService,
        auth: UserAuthenticator,
        registrar: Registrar,
        calls: CallEngine,
        recorder: CallRecorder,
        subscriptions: SubscriptionManager,
        voicemail: Voicemail,
    ) -> None:
        self._directory = directory
        self._location = location
        self._auth = auth
        self._registrar = registrar
        self.calls = calls
        self.subscriptions = subscriptions
        self._voicemail = voicemail
        self._recorder = recorder
        calls.transfer_targets = self._transfer_target
        self.click_to_call = ClickToCall(calls, self._devices, self.call_from_user)

    async def handle_request(self, tx: ServerTransactionHandle) -> None:
        request = tx.request
        method = request.method
        if request.to.tag:
            if method == "SUBSCRIBE" and self.subscriptions.refresh(tx):
                return
            if self.click_to_call.handle_in_dialog(tx):
                return
            if not await self.calls.handle_in_dialog(tx):
                tx.respond(481)
            return
        if method == "OPTIONS":
            tx.respond(
                200,
                headers=[
                    ("Allow", ALLOW),
                    ("Allow-Events", self.subscriptions.allow_events),
                    ("Accept", "application/sdp"),
                    ("Accept-Language", "en"),
                ],
            )
            return
        if method == "REGISTER":
            company = self._directory.company_by_domain(request.uri.host)
            if company is None:
                tx.respond(404, "Unknown domain")
                return
            await self._registrar.handle(tx, company)
            return
        if method == "INVITE":
            await self._invite(tx)
            return
        if method == "SUBSCRIBE":
            await self.subscriptions.subscribe(tx)
            return
        if method == "BYE":
            tx.respond(481)
            return
        tx.respond(405, headers=[("Allow", ALLOW)])

    async def _invite(self, tx: ServerTransactionHandle) -> None:
        request = tx.request
        trunks = self._directory.trunks_by_source_address(tx.source.host)
        if trunks:
            await self._invite_from_trunk(tx, trunks)
            return
        company = self._directory.company_by_domain(request.from_.uri.host)
        if company is None:
            tx.respond(403, "Unknown domain")
            return
        user = await self._auth.authenticate(tx, company)
        if user is None:
            return
        await self.call_from_user(tx, company, user)

    async def call_from_user(self, tx: CallerTransaction, company: Company, user: User) -> None:
        dialled = tx.request.uri.user or ""
        caller = Party(user.extension, user.name, user.id)
        if dialled == VOICEMAIL_ACCESS_CODE:
            await self._call_own_voicemail(tx, company, caller, user)
            return
        route = route_from_user(
            self._directory, company, dialled, self.calls.external_calls[company.id]
        )
        if isinstance(route, Refused):
            log.info(
                "refused call from %s@%s to %r: %s %s",
                user.extension,
                company.domain,
                dialled,
                route.status,
                route.reason,
            )
            tx.respond(route.status, route.reason)
            self._recorder.refused(
                company.id,
                tx.request.call_id,
                direction="outbound" if route.status == 403 else "internal",
                caller=user.extension,
                callee=dialled,
                outcome="failed",
                reason=f"{route.status} {route.reason}",
                caller_user_id=user.id,
            )
            return
        if not isinstance(route, ToTrunk):
            await self._call_internal(tx, company, caller, route, direction="internal")
            return
        caller_id = caller_id_of(self._directory, company, user, route.trunk)
        external_caller = Party(caller_id, user.name, user.id)
        destination = trunk_destination(route.trunk, route.number)
        await self.calls.place(
            tx, company, external_caller, Party(route.number), [destination], direction="outbound"
        )

    async def _call_own_voicemail(
        self, tx: CallerTransaction, company: Company, caller: Party, user: User
    ) -> None:
        """``user`` listening to their box: they are digest-authenticated, so the box
        reached is always their own."""
        access = await self._voicemail.access_for(company, user)
        if access is None:
            self._no_box(tx, company, caller, VOICEMAIL_ACCESS_CODE, direction="internal")
            return
        await self.calls.place(tx, company, caller, access.party, access, direction="internal")

    def _no_box(
        self, tx: CallerTransaction, company: Company, caller: Party, callee: str, *, direction: str
    ) -> None:
        """Refuse a call to a voicemail box that is off, and record it."""
        tx.respond(404, "No voicemail box")
        self._recorder.refused(
            company.id,
            tx.request.call_id,
            direction=direction,
            caller=caller.number,
            callee=callee,
            outcome="failed",
            reason="404 No voicemail box",
            caller_name=caller.name,
            caller_user_id=caller.user_id,
        )

    async def _invite_from_trunk(self, tx: ServerTransactionHandle, trunks: list[Trunk]) -> None:
        """A carrier's call: the dialled number picks the company among those the carrier
        serves from this address."""
        request = tx.request
        dialled = request.uri.user or request.to.uri.user or ""
        from_ = request.from_
        caller = Party(from_.uri.user or "anonymous", from_.display_name or "")
        route: Route = Refused(404, "Number not in service")
        company: Company | None = None
        for trunk in trunks:
            company = self._directory.company(trunk.company_id)
            if company is None:
                continue
            route = route_from_trunk(self._directory, company, dialled)
            if not isinstance(route, Refused):
                break
        if company is not None and not isinstance(route, Refused | ToTrunk):
            await self._call_internal(tx, company, caller, route, direction="inbound")
            return
        status, reason = (route.status, route.reason) if isinstance(route, Refused) else (404, "")
        tx.respond(status, reason or None)
        if company is not None:
            self._recorder.refused(
                company.id,
                request.call_id,
                direction="inbound",
                caller=caller.number,
                callee=dialled,
                outcome="failed",
                reason=f"{status} {reason}",
            )

    async def _call_internal(
        self,
        tx: CallerTransaction,
        company: Company,
        caller: Party,
        route: Internal,
        *,
        direction: str,
    ) -> None:
        """A call to one of the company's own extensions or voicemail boxes."""
        if isinstance(route, ToUser):
            await self._call_user(tx, company, caller, route.user, direction=direction)
        elif isinstance(route, ToGroup):
            await self._call_group(tx, company, caller, route.group, direction=direction)
        elif isinstance(route, ToIvr):
            await self._call_menu(tx, company, caller, route.menu, direction=direction)
        else:
            await self._deposit(tx, company, caller, route.owner, direction=direction)

    async def _deposit(
        self,
        tx: CallerTransaction,
        company: Company,
        caller: Party,
        owner: User | Group,
        *,
        direction: str,
    ) -> None:
        """Straight to ``owner``'s voicemail box, ringing no one."""
        deposit = await self._voicemail.deposit_for(company, owner)
        if deposit is None:
            dialled = VOICEMAIL_DEPOSIT_PREFIX + owner.extension
            self._no_box(tx, company, caller, dialled, direction=direction)
            return
        await self.calls.place(tx, company, caller, _party(owner), deposit, direction=direction)

    async def _call_group(
        self,
        tx: CallerTransaction,
        company: Company,
        caller: Party,
        group: Group,
        *,
        direction: str,
    ) -> None:
        """Ring every device of the group's members who take group calls now (their
        status rings, and pauses none); the group's voicemail takes the call if none
        answers, or no member is there."""
        await self.calls.place(
            tx,
            company,
            caller,
            _party(group),
            self._group_devices(company, group),
            direction=direction,
            fallback=lambda: self._voicemail.deposit_for(company, group),
        )

    def _group_devices(self, company: Company, group: Group) -> list[Destination]:
        devices: list[Destination] = []
        for user_id in group.member_ids:
            member = self._directory.user_by_id(company.id, user_id)
            if member is not None and takes_group_calls(self._directory, company, member):
                devices += self._devices(company, member)
        return devices

    async def _call_user(
        self,
        tx: CallerTransaction,
        company: Company,
        caller: Party,
        callee: User,
        *,
        direction: str,
    ) -> None:
        """A new call to ``callee``, as their status says: their devices ring (and their
        voicemail takes it if they cannot), or it goes to their voicemail, or it is
        refused (do not disturb), or it goes where they forward their calls."""
        target = call_target(self._directory, company, callee)
        if isinstance(target, ToVoicemail):
            deposit = await self._voicemail.deposit_for(company, target.user)
            if deposit is not None:
                await self.calls.place(
                    tx, company, caller, _party(target.user), deposit, direction=direction
                )
                return
            target = RefuseCall(480, VOICEMAIL_REASON, "missed", target.user)
        if isinstance(target, RefuseCall):
            user = target.user
            log.info(
                "call %s to %s@%s refused by their status: %s %s",
                tx.request.call_id,
                user.extension,
                company.domain,
                target.status,
                target.reason,
            )
            tx.respond(target.status, target.reason)
            self._recorder.refused(
                company.id,
                tx.request.call_id,
                direction=direction,
                caller=caller.number,
                callee=user.extension,
                outcome=target.outcome,
                reason=f"{target.status} {target.reason}",
                caller_name=caller.name,
                caller_user_id=caller.user_id,
                callee_user_id=user.id,
            )
            return
        if isinstance(target, ForwardOutside):
            await self._forward_outside(tx, company, caller, target, direction=direction)
            return
        await self._ring(tx, company, caller, target.user, direction=direction)

    async def _ring(
        self,
        tx: CallerTransaction,
        company: Company,
        caller: Party,
        callee: User,
        *,
        direction: str,
    ) -> None:
        """Ring every device of ``callee``; their voicemail takes the call if none
        answers, all are busy, or none is registered."""
        await self.calls.place(
            tx,
            company,
            caller,
            _party(callee),
            self._devices(company, callee),
            direction=direction,
            fallback=lambda: self._voicemail.deposit_for(company, callee),
        )

    async def _forward_outside(
        self,
        tx: CallerTransaction,
        company: Company,
        caller: Party,
        forward: ForwardOutside,
        *,
        direction: str,
    ) -> None:
        """A call forwarded to a number: routed as the forwarding user's own call would
        be (policy, the company's limit of external calls); the callee sees the
        forwarding user's number."""
        forwarding = forward.forwarding_user
        route = route_from_user(
            self._directory, company, forward.number, self.calls.external_calls[company.id]
        )
        if isinstance(route, Refused):
            log.info(
                "call %s forwarded by %s@%s to %r refused: %s %s",
                tx.request.call_id,
                forwarding.extension,
                company.domain,
                forward.number,
                route.status,
                route.reason,
            )
            tx.respond(route.status, route.reason)
            self._recorder.refused(
                company.id,
                tx.request.call_id,
                direction="outbound" if route.status == 403 else direction,
                caller=caller.number,
                callee=forward.number,
                outcome="failed",
                reason=f"{route.status} {route.reason} (forwarded by {forwarding.extension})",
                caller_name=caller.name,
                caller_user_id=caller.user_id,
                callee_user_id=forwarding.id,
            )
            return
        if isinstance(route, ToUser):
            # One of the company's own numbers: that user's devices, whatever their status
            # (following it again could go round in a circle).
            await self._ring(tx, company, caller, route.user, direction=direction)
            return
        if not isinstance(route, ToTrunk):
            await self._call_internal(tx, company, caller, route, direction=direction)
            return
        caller_id = caller_id_of(self._directory, company, forwarding, route.trunk)
        await self.calls.place(
            tx,
            company,
            caller,
            Party(route.number),
            [trunk_destination(route.trunk, route.number)],
            direction="outbound",
            shown_caller=Party(caller_id, forwarding.name, forwarding.id),
        )

    async def _call_menu(
        self,
        tx: CallerTransaction,
        company: Company,
        caller: Party,
        menu: IvrMenu,
        *,
        direction: str,
    ) -> None:
        menu_application = IvrApplication(
            menu,
            company.language,
            self.calls.media.prompts,
            lambda extension: self._menu_target(company, extension),
        )
        await self.calls.place(
            tx, company, caller, menu_application.party, menu_application, direction=direction
        )

    def _menu_target(self, company: Company, extension: str) -> MenuTarget:
        """Where a menu's key leads: a colleague (as their status says), a group, or
        another menu."""
        user = self._directory.user(company.id, extension)
        if user is not None:
            return self._user_target(company, user)
        group = self._directory.group(company.id, extension)
        if group is not None:
            return self._group_target(company, group)
        menu = self._directory.ivr(company.id, extension)
        if menu is not None:
            return menu
        return Refused(404, f"No extension {extension}")

    def _devices(self, company: Company, user: User) -> list[Destination]:
        """Every registered device of ``user``: a call to them rings all at once."""
        to = Address(URI("sip", user.extension, host=company.domain), user.name or None)
        return [
            Destination(URI.parse(binding.contact), binding.peer, to)
            for binding in self._location.bindings(company.id, user.id, datetime.now(UTC))
        ]

    def _transfer_target(
        self, company: Company, transferor: Party, dialled: str
    ) -> TransferTarget | Refused:
        """Where a user's transfer to ``dialled`` goes: the same routing and policy as a
        call the user would place."""
        route = route_from_user(
            self._directory, company, dialled, self.calls.external_calls[company.id]
        )
        if isinstance(route, Refused):
            return route
        if isinstance(route, ToIvr):
            return Refused(488, "Calls cannot be transferred to a voice menu yet")
        if isinstance(route, ToMailbox):
            return Refused(488, "Calls cannot be transferred to a voicemail box yet")
        if isinstance(route, ToUser):
            return self._user_target(company, route.user)
        if isinstance(route, ToGroup):
            return self._group_target(company, route.group)
        transferring = (
            self._directory.user_by_id(company.id, transferor.user_id)
            if transferor.user_id is not None
            else None
        )
        if transferring is None:
            return Refused(403, "Unknown transferor")
        return self._outside_target(company, transferring, route)

    def _user_target(self, company: Company, user: User) -> TransferTarget | Refused:
        """A call handed to ``user`` (a transfer, a menu's key), as their status says."""
        target = call_target(self._directory, company, user)
        if isinstance(target, RefuseCall):
            return Refused(target.status, target.reason)
        if isinstance(target, ToVoicemail):
            return Refused(480, "Not available")
        if isinstance(target, RingUser):
            reached = target.user
        else:
            route = route_from_user(
                self._directory, company, target.number, self.calls.external_calls[company.id]
            )
            if isinstance(route, ToTrunk):
                return self._outside_target(company, target.forwarding_user, route)
            if isinstance(route, Refused):
                return route
            if not isinstance(route, ToUser):
                return Refused(488, "Calls cannot be transferred there yet")
            reached = route.user
        return TransferTarget(
            Party(reached.extension, reached.name, reached.id),
            self._devices(company, reached),
            "internal",
        )

    def _group_target(self, company: Company, group: Group) -> TransferTarget | Refused:
        """A call handed to a group: its members who take group calls ring."""
        devices = self._group_devices(company, group)
        if not devices:
            return Refused(480, "No member of the group is available")
        return TransferTarget(_party(group), devices, "internal")

    def _outside_target(self, company: Company, user: User, route: ToTrunk) -> TransferTarget:
        """A call handed to an external number on behalf of ``user``, shown their number."""
        caller_id = caller_id_of(self._directory, company, user, route.trunk)
        return TransferTarget(
            Party(route.number),
            [trunk_destination(route.trunk, route.number)],
            "outbound",
            caller=Party(caller_id, user.name, user.id),
        )


def _party(owner: User | Group) -> Party:
    if isinstance(owner, Group):
        return Party(owner.extension, owner.name)
    return Party(owner.extension, owner.name, owner.id)
