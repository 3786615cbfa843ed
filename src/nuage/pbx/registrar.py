"""The registrar (RFC 3261 section 10): where each user's devices can be reached."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import lru_cache

from nuage.pbx.auth import UserAuthenticator
from nuage.pbx.location import Binding, BindingChange, LocationService
from nuage.sip.endpoint import ServerTransactionHandle
from nuage.sip.grammar import SipSyntaxError, parse_delta_seconds
from nuage.store.models import Company

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_EXPIRES = 7200
# Bounds what one account can make every call fork to (and store): a phone system user has
# a desk phone, a softphone or two, a mobile.
MAX_CONTACTS = 10

# Told of a device that registered afresh: (company id, user id, its binding).
NewBindingListener = Callable[[int, int, Binding], None]


class Registrar:
    def __init__(
        self,
        location: LocationService,
        auth: UserAuthenticator,
        *,
        on_new_binding: NewBindingListener | None = None,
    ) -> None:
        self._location = location
        self._auth = auth
        self._on_new_binding = on_new_binding

    async def handle(self, tx: ServerTransactionHandle, company: Company) -> None:
        request = tx.request
        user = await self._auth.authenticate(tx, company)
        if user is None:
            return
        if request.to.uri.user != user.extension:
            tx.respond(403, "Cannot register another user's extension")
            return
        contacts = request.contacts
        default_expires = request.expires
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
        current = {
            binding.contact: binding
            for binding in self._location.bindings(company.id, user.id, now)
        }
        refusal = self._refusal(current, wanted, request.call_id, request.cseq.seq)
        if refusal is not None:
            tx.respond(*refusal)
            return
        changes = [
            BindingChange(
                uri,
                Binding(
                    uri,
                    tx.source,
                    now + timedelta(seconds=min(expires, MAX_EXPIRES)),
                    request.call_id,
                    request.cseq.seq,
                    request.headers.get("User-Agent"),
                    instance_id,
                )
                if expires
                else None,
            )
            for uri, expires, instance_id in wanted
        ]
        await self._location.change(company.id, user.id, changes, remove_all=wildcard)
        tx.respond(200, headers=self._contact_headers(company.id, user.id, now))
        if self._on_new_binding is not None:
            for change in changes:
                if change.binding is not None and _is_fresh(change.binding, current):
                    self._on_new_binding(company.id, user.id, change.binding)

    @staticmethod
    def _refusal(
        current: dict[str, Binding],
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

    def _contact_headers(
        self, company_id: int, user_id: int, now: datetime
    ) -> list[tuple[str, str]]:
        headers = [("Date", _date_header(int(now.timestamp())))]
        for binding in self._location.bindings(company_id, user_id, now):
            remaining = max(0, int((binding.expires_at - now).total_seconds()))
            headers.append(("Contact", f"<{binding.contact}>;expires={remaining}"))
        return headers


@lru_cache(maxsize=1)
def _date_header(second: int) -> str:
    """The Date header of a second (RFC 3261 20.17): formatted once for every REGISTER
    answered within it."""
    return format_datetime(datetime.fromtimestamp(second, UTC), usegmt=True)


def _is_fresh(binding: Binding, current: dict[str, Binding]) -> bool:
    """Whether ``binding`` is a new registration rather than a refresh: a UA keeps its
    Call-ID across the refreshes of one boot (RFC 3261 10.2.4), so a new Call-ID for a
    contact already bound is a device that restarted."""
    before = current.get(binding.contact)
    return before is None or before.call_id != binding.call_id
