"""Who sent a request: digest authentication of a company's users, with throttling."""

from __future__ import annotations

import time

from nuage.pbx.directory import Directory
from nuage.pbx.throttle import FailureThrottle
from nuage.sip.digest import AuthOutcome, DigestAuthenticator, parse_credentials
from nuage.sip.endpoint import ServerTransactionHandle
from nuage.store.models import Company, User


class UserAuthenticator:
    """Challenges requests and checks their answers against the users' stored HA1.

    Wrong credentials get 403 and count against the source address; a source with too many
    failures is refused without a check until its block ends. A nonce that this server did
    not issue (or one from before a secret change) is simply challenged again.
    """

    def __init__(
        self, directory: Directory, digest: DigestAuthenticator, throttle: FailureThrottle
    ):
        self._directory = directory
        self._digest = digest
        self._throttle = throttle

    async def authenticate(self, tx: ServerTransactionHandle, company: Company) -> User | None:
        """The authenticated user, or None once a 401/403 has been sent."""
        now = time.time()
        source = tx.source.host
        if self._throttle.is_blocked(source, now):
            tx.respond(403, "Too many failed authentications")
            return None
        credentials = None
        for value in tx.request.headers.values("Authorization"):
            try:
                candidate = parse_credentials(value)
            except ValueError:
                continue
            if candidate.realm == company.domain:
                credentials = candidate
                break
        if credentials is None or not self._digest.issued(credentials.nonce):
            self._challenge(tx, company, now, stale=False)
            return None
        user = self._directory.user(company.id, credentials.username)
        ha1 = ""
        if user is not None:
            ha1 = user.sip_ha1_md5 if credentials.algorithm == "MD5" else user.sip_ha1_sha256
        outcome = self._digest.verify(credentials, tx.request.method, company.domain, ha1, now)
        if outcome is AuthOutcome.STALE:
            self._challenge(tx, company, now, stale=True)
            return None
        if outcome is AuthOutcome.FAILED or user is None:
            self._throttle.failure(source, now)
            tx.respond(403, "Wrong credentials")
            return None
        self._throttle.success(source)
        return user

    def _challenge(
        self, tx: ServerTransactionHandle, company: Company, now: float, *, stale: bool
    ) -> None:
        challenges = self._digest.challenges(company.domain, now, stale=stale)
        tx.respond(401, headers=[("WWW-Authenticate", value) for value in challenges])
