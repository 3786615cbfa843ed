"""The registrar (RFC 3261 section 10): where each user's devices can be reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from nuage.pbx.auth import UserAuthenticator
from nuage.sip.endpoint import ServerTransactionHandle
from nuage.sip.grammar import SipSyntaxError, parse_delta_seconds
from nuage.store import repositories
from nuage.store.database import Database
from nuage.store.models import Company, Registration

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_EXPIRES = 7200
# Bounds what one account can make every call fork to (and store): a phone system user has
# a desk phone, a softphone or two, a mobile.
MAX_CONTACTS = 10


class Registrar:
    def __init__(self, db: Database, auth: UserAuthenticator) -> None:
        self._db = db
        self._auth = auth

    async def handle(self, tx: ServerTransactionHandle, company: Company) -> None:
        request = tx.request
        user = await self._auth.authenticate(tx, company)
        if user is None:
            return
        if request.to.uri.user != user.extension:
            tx.respond(403, "Cannot register another user's extension")
            return
        try:
            contacts = request.contacts
            default_expires = request.expires
        except SipSyntaxError as exc:
            tx.respond(400, f"Bad Contact or Expires: {exc}")
            return
        if default_expires is None:
            default_expires = DEFAULT_EXPIRES
        wildcard = any(contact.wildcard for contact in contacts)
        if wildcard and (len(contacts) != 1 or default_expires != 0):
            tx.respond(400, "Contact * needs Expires: 0 and no other contact")
            return
        wanted: list[tuple[str, int, str | None]] = []
        for contact in [] if wildcard else contacts:
            raw = contact.params.get("expires")
            try:
                expires = parse_delta_seconds(raw) if raw is not None else default_expires
            except SipSyntaxError:
                expires = default_expires
            if 0 < expires < MIN_EXPIRES:
                tx.respond(423, headers=[("Min-Expires", str(MIN_EXPIRES))])
                return
            wanted.append((str(contact.uri), expires, contact.params.get("+sip.instance")))
        now = datetime.now(UTC)
        source = tx.source
        async with self._db.transaction() as session:
            current = {
                binding.contact: binding
                for binding in await repositories.contacts_of(session, company.id, user.id, now)
            }
            refusal = self._refusal(current, wanted, request.call_id, request.cseq.seq)
            if refusal is not None:
                tx.respond(*refusal)
                return
            if wildcard:
                await repositories.remove_registrations(session, company.id, user.id)
            for uri, expires, instance_id in wanted:
                if expires == 0:
                    await repositories.remove_registration(session, company.id, user.id, uri)
                    continue
                await repositories.save_registration(
                    session,
                    company_id=company.id,
                    user_id=user.id,
                    contact=uri,
                    transport=source.transport,
                    source_host=source.host,
                    source_port=source.port,
                    connection_id=(
                        None if source.connection_id is None else str(source.connection_id)
                    ),
                    call_id=request.call_id,
                    cseq=request.cseq.seq,
                    expires_at=now + timedelta(seconds=min(expires, MAX_EXPIRES)),
                    user_agent=request.headers.get("User-Agent"),
                    instance_id=instance_id,
                )
            bindings = await repositories.contacts_of(session, company.id, user.id, now)
        tx.respond(200, headers=self._contact_headers(bindings, now))

    @staticmethod
    def _refusal(
        current: dict[str, Registration],
        wanted: list[tuple[str, int, str | None]],
        call_id: str,
        cseq: int,
    ) -> tuple[int, str] | None:
        """Why this REGISTER must not change the bindings, if it must not."""
        for uri, _, _ in wanted:
            binding = current.get(uri)
            # RFC 3261 10.3 step 7: a REGISTER older than what the binding holds is stale.
            if binding is not None and binding.call_id == call_id and binding.cseq >= cseq:
                return 500, "Out of order REGISTER"
        after = set(current) | {uri for uri, expires, _ in wanted if expires}
        after -= {uri for uri, expires, _ in wanted if not expires}
        if len(after) > MAX_CONTACTS and len(after) > len(current):
            return 403, f"Too many devices registered (at most {MAX_CONTACTS})"
        return None

    @staticmethod
    def _contact_headers(bindings: list[Registration], now: datetime) -> list[tuple[str, str]]:
        headers = [("Date", format_datetime(now, usegmt=True))]
        for binding in bindings:
            remaining = max(0, int((binding.expires_at - now).total_seconds()))
            headers.append(("Contact", f"<{binding.contact}>;expires={remaining}"))
        return headers
