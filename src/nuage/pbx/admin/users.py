"""A company's users: created, changed and deleted by its administrators or the
provider's engineers, with the plan's validation and secrets (argon2 app password,
HA1 SIP secrets)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.admin.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from nuage.pbx.admin.patches import Patch, apply_patch
from nuage.pbx.admin.references import check_extension_free, move_references, references_to
from nuage.pbx.admin.store import AdminStore
from nuage.pbx.location import LocationService
from nuage.pbx.provision import (
    UserPlan,
    UserProfile,
    assign,
    password_hash,
    sip_secrets,
    user_values,
)
from nuage.store import repositories
from nuage.store.models import Company, User

__all__ = ["Users", "user_profile"]


def user_profile(user: User) -> dict[str, Any]:
    """The user's row as the fields of a UserProfile."""
    return {"name": user.name, "extension": user.extension, "email": user.email, "role": user.role}


class Users:
    def __init__(self, store: AdminStore, location: LocationService) -> None:
        self._store = store
        self._location = location

    async def list(self, company_id: int) -> list[User]:
        """The company's users, by extension."""
        async with self._store.reading(company_id) as (session, company):
            return await repositories.users(session, company.id)

    async def get(self, company_id: int, user_id: int) -> User:
        async with self._store.reading(company_id) as (session, company):
            return await _user(session, company, user_id)

    async def create(self, company_id: int, entry: UserPlan, *, by_engineer: bool) -> User:
        _check_roles(by_engineer, entry.role)
        hashed = await _hash(entry.password)
        async with self._store.changing(company_id) as (session, company):
            await check_extension_free(session, company.id, entry.extension)
            await _check_email_free(session, entry.email)
            user = User(
                company_id=company.id,
                **user_values(entry),
                **sip_secrets(entry.extension, company.domain, entry.sip_password),
                **hashed,
            )
            session.add(user)
        return user

    async def update(
        self, company_id: int, user_id: int, patch: Patch[UserPlan], *, by_engineer: bool
    ) -> User:
        """Change the fields sent. A new extension needs the SIP password (the SIP
        secrets are bound to it), and takes along what routed calls to the old one."""
        changes = patch.changes()
        password = changes.pop("password", None)
        sip_password: str | None = changes.pop("sip_password", None)
        hashed = await _hash(password)
        async with self._store.changing(company_id) as (session, company):
            user = await _user(session, company, user_id)
            _check_roles(by_engineer, user.role, changes.get("role", user.role))
            entry = apply_patch(UserProfile, user_profile(user), changes)
            if entry.extension != user.extension:
                if sip_password is None:
                    raise InvalidError(
                        "Required to change the extension: the SIP secrets are bound to it",
                        field="sip_password",
                    )
                await check_extension_free(session, company.id, entry.extension, user_id=user.id)
                await move_references(session, company.id, user.extension, entry.extension)
            if entry.email != user.email:
                await _check_email_free(session, entry.email)
            values = user_values(entry) | hashed
            if sip_password is not None:
                values |= sip_secrets(entry.extension, company.domain, sip_password)
            assign(user, values)
        return user

    async def delete(self, company_id: int, user_id: int, *, by_engineer: bool) -> None:
        """Delete the user, their registrations, app sessions (their tokens stop working)
        and favorites; call records and recordings stay, without them. Refused while a
        number, a status or a voice menu sends calls to their extension."""
        async with self._store.changing(company_id) as (session, company):
            user = await _user(session, company, user_id)
            _check_roles(by_engineer, user.role)
            found = await references_to(session, company.id, user.extension)
            if found:
                raise ConflictError(
                    "in_use",
                    f"Calls go to extension {user.extension} through {', '.join(found)}; "
                    "change them first",
                )
            # The database's foreign keys delete or detach the rest.
            await session.delete(user)
        # SQLite may give the next user this id: the new user must not inherit the phones.
        self._location.forget(company_id, user_id)


async def _user(session: AsyncSession, company: Company, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None or user.company_id != company.id:
        raise NotFoundError(f"No user {user_id}")
    return user


def _check_roles(by_engineer: bool, *roles: str) -> None:
    """Engineers administer every company: only they make, change or delete one."""
    if "engineer" in roles and not by_engineer:
        raise ForbiddenError("Only the provider's engineers manage engineer accounts", field="role")


async def _check_email_free(session: AsyncSession, email: str) -> None:
    # Emails are logins, unique across companies; whose it is stays unsaid.
    if await repositories.user_by_email(session, email) is not None:
        raise ConflictError("email_taken", f"{email} is already in use", field="email")


async def _hash(password: str | None) -> dict[str, str]:
    """The password_hash column for a new app password; argon2 is slow on purpose, so in
    a thread and before the transaction."""
    if password is None:
        return {}
    hashed = await asyncio.to_thread(password_hash, None, password)
    return {} if hashed is None else {"password_hash": hashed}
