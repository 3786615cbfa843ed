"""Who sent a request: digest authentication of a company's users, with throttling; and,
for browsers over WebSocket, the app's access token (RFC 8898 bearer tokens)."""

from __future__ import annotations

import time

from nuage.pbx.app_sessions import AppSessions
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

    With ``sessions``, a request over WebSocket may instead carry the web app's access
    token, ``Authorization: Bearer <token>`` (RFC 8898; JsSIP's ``authorization_jwt``):
    the token names the user, whose extension must be the request's From user (403
    otherwise). An expired, revoked or unknown token gets 401 with the Digest challenges
    and ``Bearer realm=..., error="invalid_token"``; the app then refreshes its token and
    tries again. Other transports never take a token (a desk phone has none): 403.
    """

    def __init__(
        self,
        directory: Directory,
        digest: DigestAuthenticator,
        throttle: FailureThrottle,
        *,
        sessions: AppSessions | None = None,
    ):
        self._directory = directory
        self._digest = digest
        self._throttle = throttle
        self._sessions = sessions

    async def authenticate(self, tx: ServerTransactionHandle, company: Company) -> User | None:
        """The authenticated user, or None once a 401/403 has been sent."""
        now = time.time()
        source = tx.source.host
        if self._throttle.is_blocked(source, now):
            tx.respond(403, "Too many failed authentications")
            return None
        credentials = None
        bearer = None
        for value in tx.request.headers.values("Authorization"):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                bearer = bearer or token.strip()
                continue
            try:
                candidate = parse_credentials(value)
            except ValueError:
                continue
            if candidate.realm == company.domain:
                credentials = candidate
                break
        if credentials is None and bearer:
            return await self._bearer(tx, company, bearer, now)
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

    async def _bearer(
        self, tx: ServerTransactionHandle, company: Company, token: str, now: float
    ) -> User | None:
        """The user of the app's access token ``token`` (RFC 8898), over WebSocket only."""
        if self._sessions is None or not tx.source.connection_bound:
            tx.respond(403, "Bearer tokens are accepted over WebSocket only")
            return None
        principal = await self._sessions.authenticate(token)
        if principal is not None and principal.company_id != company.id:
            tx.respond(403, "The token's user is not of this domain")
            return None
        user = None
        if principal is not None:
            user = self._directory.user_by_id(company.id, principal.user_id)
        if user is None:
            # Expired, revoked, unknown, or its user deleted since: the app refreshes it.
            self._throttle.failure(tx.source.host, now)
            self._challenge(tx, company, now, stale=False, bearer_error="invalid_token")
            return None
        if tx.request.from_.uri.user != user.extension:
            tx.respond(403, "From is not the token's user")
            return None
        self._throttle.success(tx.source.host)
        return user

    def _challenge(
        self,
        tx: ServerTransactionHandle,
        company: Company,
        now: float,
        *,
        stale: bool,
        bearer_error: str | None = None,
    ) -> None:
        challenges = self._digest.challenges(company.domain, now, stale=stale)
        if self._sessions is not None and tx.source.connection_bound:
            # After the Digest ones: a client answers the first scheme it supports.
            error = f', error="{bearer_error}"' if bearer_error else ""
            challenges.append(f'Bearer realm="{company.domain}"{error}')
        tx.respond(401, headers=[("WWW-Authenticate", value) for value in challenges])
