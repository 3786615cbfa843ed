"""The PBX as the SIP endpoint's transaction user: every request lands here first."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from nuage.pbx.auth import UserAuthenticator
from nuage.pbx.calls import (
    ALLOW,
    CallEngine,
    Destination,
    Party,
    registration_destination,
    trunk_destination,
)
from nuage.pbx.records import CallRecorder
from nuage.pbx.registrar import Registrar
from nuage.pbx.routing import (
    Refused,
    Route,
    ToTrunk,
    ToUser,
    caller_id_of,
    route_from_trunk,
    route_from_user,
)
from nuage.sip.endpoint import ServerTransactionHandle
from nuage.sip.message import URI, Address
from nuage.store import repositories
from nuage.store.database import Database
from nuage.store.models import Company, Trunk, User

log = logging.getLogger(__name__)


class PbxService:
    def __init__(
        self,
        db: Database,
        auth: UserAuthenticator,
        registrar: Registrar,
        calls: CallEngine,
        recorder: CallRecorder,
    ) -> None:
        self._db = db
        self._auth = auth
        self._registrar = registrar
        self.calls = calls
        self._recorder = recorder

    async def handle_request(self, tx: ServerTransactionHandle) -> None:
        request = tx.request
        method = request.method
        if request.to.tag:
            if not await self.calls.handle_in_dialog(tx):
                tx.respond(481)
            return
        if method == "OPTIONS":
            tx.respond(
                200,
                headers=[
                    ("Allow", ALLOW),
                    ("Accept", "application/sdp"),
                    ("Accept-Language", "en"),
                ],
            )
            return
        if method == "REGISTER":
            company = await self._company_for(request.uri.host)
            if company is None:
                tx.respond(404, "Unknown domain")
                return
            await self._registrar.handle(tx, company)
            return
        if method == "INVITE":
            await self._invite(tx)
            return
        if method == "BYE":
            tx.respond(481)
            return
        tx.respond(405, headers=[("Allow", ALLOW)])

    async def _company_for(self, domain: str) -> Company | None:
        async with self._db.session() as session:
            return await repositories.company_by_domain(session, domain.lower())

    async def _invite(self, tx: ServerTransactionHandle) -> None:
        request = tx.request
        async with self._db.session() as session:
            trunks = await repositories.trunks_by_source_address(session, tx.source.host)
        if trunks:
            await self._invite_from_trunk(tx, trunks)
            return
        company = await self._company_for(request.from_.uri.host)
        if company is None:
            tx.respond(403, "Unknown domain")
            return
        user = await self._auth.authenticate(tx, company)
        if user is None:
            return
        await self._invite_from_user(tx, company, user)

    async def _invite_from_user(
        self, tx: ServerTransactionHandle, company: Company, user: User
    ) -> None:
        dialled = tx.request.uri.user or ""
        caller = Party(user.extension, user.name, user.id)
        async with self._db.session() as session:
            route = await route_from_user(
                session, company, dialled, self.calls.external_calls[company.id]
            )
            if isinstance(route, ToTrunk):
                caller_id = await caller_id_of(session, company, user, route.trunk)
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
            await self._recorder.refused(
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
        if isinstance(route, ToUser):
            await self._call_user(tx, company, caller, route.user, direction="internal")
            return
        external_caller = Party(caller_id, user.name, user.id)
        destination = trunk_destination(route.trunk, route.number)
        await self.calls.place(
            tx, company, external_caller, Party(route.number), [destination], direction="outbound"
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
        async with self._db.session() as session:
            for trunk in trunks:
                company = await repositories.company(session, trunk.company_id)
                if company is None:
                    continue
                route = await route_from_trunk(session, company, dialled)
                if isinstance(route, ToUser):
                    break
        if company is not None and isinstance(route, ToUser):
            await self._call_user(tx, company, caller, route.user, direction="inbound")
            return
        status, reason = (route.status, route.reason) if isinstance(route, Refused) else (404, "")
        tx.respond(status, reason or None)
        if company is not None:
            await self._recorder.refused(
                company.id,
                request.call_id,
                direction="inbound",
                caller=caller.number,
                callee=dialled,
                outcome="failed",
                reason=f"{status} {reason}",
            )

    async def _call_user(
        self,
        tx: ServerTransactionHandle,
        company: Company,
        caller: Party,
        callee: User,
        *,
        direction: str,
    ) -> None:
        async with self._db.session() as session:
            registrations = await repositories.contacts_of(
                session, company.id, callee.id, datetime.now(UTC)
            )
        to = Address(URI("sip", callee.extension, host=company.domain), callee.name or None)
        destinations: list[Destination] = [
            registration_destination(registration, to) for registration in registrations
        ]
        await self.calls.place(
            tx,
            company,
            caller,
            Party(callee.extension, callee.name, callee.id),
            destinations,
            direction=direction,
        )
