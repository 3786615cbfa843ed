"""App logins (issue 4): email and app password in, an access token and a refresh token
out; the access token authenticates every API request and the WebSocket.

Tokens are ``<session id>.<secret>``: the id finds the session row, the secret is
compared with its SHA-256 hash there (a leaked database gives no usable token). Access
tokens live 15 minutes, refresh tokens 30 days; refreshing replaces both (a stolen
refresh token used twice is worthless to one of its holders), logging out revokes the
session. Failed logins are throttled per source address and per account, like SIP
digest failures, so guessing passwords is as slow through the API as through a phone.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from nuage.pbx.throttle import FailureThrottle
from nuage.store.database import Database
from nuage.store.models import AppSession, User
from nuage.store.repositories import user_by_email

ACCESS_LIFETIME = timedelta(minutes=15)
REFRESH_LIFETIME = timedelta(days=30)

_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so that a wrong email costs as long as
    a wrong password and the response time does not tell which accounts exist (made on
    first use: hashing takes a while, and every `nuage` command imports this module)."""
    return _HASHER.hash(secrets.token_hex(16))


class LoginRefusedError(Exception):
    """Wrong email or password (which one is not said), or too many failures."""

    def __init__(self, message: str, *, throttled: bool = False) -> None:
        super().__init__(message)
        self.throttled = throttled


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes an API request."""

    user_id: int
    company_id: int
    role: str  # "user", "admin" (of the company), "engineer" (the provider's)
    session_id: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(token: str) -> tuple[str, str] | None:
    session_id, _, secret = token.partition(".")
    if len(session_id) != 32 or not secret or len(token) > 200:
        return None
    return session_id, secret


class AppSessions:
    def __init__(self, db: Database, throttle: FailureThrottle | None = None) -> None:
        self._db = db
        self._throttle = throttle or FailureThrottle()

    async def login(self, email: str, password: str, source: str) -> Tokens:
        now = time.time()
        account = f"login:{email.lower()}"
        if self._throttle.is_blocked(source, now) or self._throttle.is_blocked(account, now):
            raise LoginRefusedError("Too many failed logins; try again later", throttled=True)
        async with self._db.session() as session:
            user = await user_by_email(session, email)
        if not await asyncio.to_thread(_password_matches, user, password):
            self._throttle.failure(source, now)
            self._throttle.failure(account, now)
            raise LoginRefusedError("Wrong email or password")
        assert user is not None
        self._throttle.success(source)
        self._throttle.success(account)
        session_id = secrets.token_hex(16)
        issued = datetime.now(UTC)
        tokens, row = _issue(session_id, issued)
        async with self._db.transaction() as session:
            session.add(AppSession(id=session_id, user_id=user.id, created_at=issued, **row))
        return tokens

    async def refresh(self, refresh_token: str) -> Tokens | None:
        """New tokens for a valid refresh token (the old ones stop working); None when
        it is unknown, expired or revoked."""
        parts = _split(refresh_token)
        if parts is None:
            return None
        session_id, secret = parts
        now = datetime.now(UTC)
        async with self._db.transaction() as session:
            row = await session.get(AppSession, session_id, with_for_update=True)
            if (
                row is None
                or row.revoked_at is not None
                or row.refresh_expires_at <= now
                or not hmac.compare_digest(row.refresh_hash, _digest(secret))
            ):
                return None
            tokens, values = _issue(session_id, now)
            for name, value in values.items():
                setattr(row, name, value)
        return tokens

    async def authenticate(self, access_token: str) -> Principal | None:
        parts = _split(access_token)
        if parts is None:
            return None
        session_id, secret = parts
        now = datetime.now(UTC)
        async with self._db.session() as session:
            found = (
                await session.execute(
                    select(AppSession, User)
                    .join(User, User.id == AppSession.user_id)
                    .where(AppSession.id == session_id)
                )
            ).first()
        if found is None:
            return None
        row, user = found
        if (
            row.revoked_at is not None
            or row.access_expires_at <= now
            or not hmac.compare_digest(row.access_hash, _digest(secret))
        ):
            return None
        return Principal(user.id, user.company_id, user.role, session_id)

    async def logout(self, principal: Principal) -> None:
        async with self._db.transaction() as session:
            row = await session.get(AppSession, principal.session_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)


def _issue(session_id: str, now: datetime) -> tuple[Tokens, dict[str, object]]:
    access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    tokens = Tokens(
        f"{session_id}.{access}",
        f"{session_id}.{refresh}",
        now + ACCESS_LIFETIME,
        now + REFRESH_LIFETIME,
    )
    return tokens, {
        "access_hash": _digest(access),
        "access_expires_at": tokens.access_expires_at,
        "refresh_hash": _digest(refresh),
        "refresh_expires_at": tokens.refresh_expires_at,
    }


def _password_matches(user: User | None, password: str) -> bool:
    try:
        return _HASHER.verify(user.password_hash if user is not None else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
