"""A company's groups (F18-F23, P6), with the rules of the plan's [[groups]]: an
extension free among users, voice menus and groups; members that are users of the
company, each once. Members are named by extension, as in the plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.admin.errors import ConflictError, InvalidError, NotFoundError
from nuage.pbx.admin.patches import Patch, apply_patch
from nuage.pbx.admin.references import check_extension_free, move_references, references_to
from nuage.pbx.admin.store import AdminStore
from nuage.pbx.provision import GroupPlan, assign, set_group_members
from nuage.store import repositories
from nuage.store.models import Company, Group

__all__ = ["GroupRow", "Groups", "group_entry"]


@dataclass(frozen=True, slots=True)
class GroupRow:
    """A group as the admin API shows it: its id, and its entry (members by extension)."""

    id: int
    entry: GroupPlan


def group_entry(group: Group, extensions: Mapping[int, str]) -> dict[str, Any]:
    """The group's row as the fields of a GroupPlan; ``extensions``: the company's users'
    by id. Members in the order of their extensions."""
    members = sorted((extensions[user_id] for user_id in group.member_ids), key=int)
    return {"name": group.name, "extension": group.extension, "members": members}


class Groups:
    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def list(self, company_id: int) -> list[GroupRow]:
        """The company's groups, by extension."""
        async with self._store.reading(company_id) as (session, company):
            extensions = await _extensions(session, company)
            groups = await repositories.groups(session, company.id)
            return [_row(group, extensions) for group in groups]

    async def get(self, company_id: int, group_id: int) -> GroupRow:
        async with self._store.reading(company_id) as (session, company):
            group = await _group(session, company, group_id)
            return _row(group, await _extensions(session, company))

    async def create(self, company_id: int, entry: GroupPlan) -> GroupRow:
        async with self._store.changing(company_id) as (session, company):
            await check_extension_free(session, company.id, entry.extension)
            extensions = await _extensions(session, company)
            members = _member_ids(entry, extensions)
            # An empty list, not an unloaded one: the flushed group is read below.
            group = Group(
                company_id=company.id, name=entry.name, extension=entry.extension, members=[]
            )
            set_group_members(group, members)
            session.add(group)
            await session.flush()
            row = _row(group, extensions)
        return row

    async def update(self, company_id: int, group_id: int, patch: Patch[GroupPlan]) -> GroupRow:
        """Change the fields sent; a new extension takes along what routed calls to the
        old one (its numbers, to the group or to its voicemail box, and menu keys)."""
        async with self._store.changing(company_id) as (session, company):
            group = await _group(session, company, group_id)
            extensions = await _extensions(session, company)
            entry = apply_patch(GroupPlan, group_entry(group, extensions), patch.changes())
            members = _member_ids(entry, extensions)
            if entry.extension != group.extension:
                await check_extension_free(session, company.id, entry.extension, group_id=group.id)
                await move_references(session, company.id, group.extension, entry.extension)
            assign(group, {"name": entry.name, "extension": entry.extension})
            set_group_members(group, members)
            await session.flush()
            row = _row(group, extensions)
        return row

    async def delete(self, company_id: int, group_id: int) -> None:
        """Delete the group with its members' rows and its voicemail box's (box and
        messages); refused while a number or a voice menu sends calls to it."""
        async with self._store.changing(company_id) as (session, company):
            group = await _group(session, company, group_id)
            found = await references_to(session, company.id, group.extension)
            if found:
                raise ConflictError(
                    "in_use",
                    f"Calls go to extension {group.extension} through {', '.join(found)}; "
                    "change them first",
                )
            # The members' rows go with it; the database's foreign keys delete the box.
            await session.delete(group)


async def _group(session: AsyncSession, company: Company, group_id: int) -> Group:
    group = await session.get(Group, group_id)
    if group is None or group.company_id != company.id:
        raise NotFoundError(f"No group {group_id}")
    return group


async def _extensions(session: AsyncSession, company: Company) -> dict[int, str]:
    """The extensions of the company's users, by id."""
    return {user.id: user.extension for user in await repositories.users(session, company.id)}


def _member_ids(entry: GroupPlan, extensions: Mapping[int, str]) -> list[int]:
    """The ids of the entry's members; InvalidError for one that is no user of the
    company, or twice."""
    users = {extension: user_id for user_id, extension in extensions.items()}
    seen: set[str] = set()
    for member in entry.members:
        if member in seen:
            raise InvalidError(f"duplicate {member!r}", field="members")
        if member not in users:
            raise InvalidError(f"no user with extension {member!r}", field="members")
        seen.add(member)
    return [users[member] for member in entry.members]


def _row(group: Group, extensions: Mapping[int, str]) -> GroupRow:
    return GroupRow(group.id, GroupPlan.model_validate(group_entry(group, extensions)))
