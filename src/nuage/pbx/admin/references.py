"""What routes calls to an extension: numbers (to it, or with *97 to its voicemail box),
statuses that forward, IVR menus' keys and fallbacks. Users and groups are found by
extension there, so an extension that is referred to cannot just disappear."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.admin.errors import ConflictError
from nuage.pbx.numbering import VOICEMAIL_DEPOSIT_PREFIX
from nuage.store import repositories

__all__ = ["check_extension_free", "move_references", "references_to"]


async def check_extension_free(
    session: AsyncSession,
    company_id: int,
    extension: str,
    *,
    user_id: int | None = None,
    group_id: int | None = None,
) -> None:
    """ConflictError unless the extension is free in the company (but for ``user_id``'s
    or ``group_id``'s own): users, IVR menus and groups share the numbering plan."""
    user = await repositories.user_by_extension(session, company_id, extension)
    if user is not None and user.id != user_id:
        raise ConflictError(
            "extension_taken", f"Extension {extension} is {user.name}'s", field="extension"
        )
    for menu in await repositories.ivr_menus(session, company_id):
        if menu.extension == extension:
            raise ConflictError(
                "extension_taken",
                f"Extension {extension} is the voice menu {menu.name!r}",
                field="extension",
            )
    for group in await repositories.groups(session, company_id):
        if group.extension == extension and group.id != group_id:
            raise ConflictError(
                "extension_taken",
                f"Extension {extension} is the group {group.name!r}",
                field="extension",
            )


async def references_to(session: AsyncSession, company_id: int, extension: str) -> list[str]:
    """What sends calls to ``extension`` or its voicemail box, in words ("number
    +3225550100", ...)."""
    box = VOICEMAIL_DEPOSIT_PREFIX + extension
    found = [
        f"number {number.number}"
        for number in await repositories.numbers(session, company_id)
        if number.route in (extension, box)
    ]
    found += [
        f"status {status.key!r}"
        for status in await repositories.statuses(session, company_id)
        if status.forward_to == extension
    ]
    found += [
        f"voice menu {menu.name!r}"
        for menu in await repositories.ivr_menus(session, company_id)
        if extension in menu.keys.values() or menu.fallback == extension
    ]
    return found


async def move_references(session: AsyncSession, company_id: int, old: str, new: str) -> None:
    """Make what sends calls to extension ``old`` send them to ``new``: a user or group
    that changes extension keeps its numbers (those to its voicemail box too), forwards
    and menu keys."""
    moved = {old: new, VOICEMAIL_DEPOSIT_PREFIX + old: VOICEMAIL_DEPOSIT_PREFIX + new}
    for number in await repositories.numbers(session, company_id):
        if number.route in moved:
            number.route = moved[number.route]
    for status in await repositories.statuses(session, company_id):
        if status.forward_to == old:
            status.forward_to = new
    for menu in await repositories.ivr_menus(session, company_id):
        if old in menu.keys.values():
            # A new dict: the JSON column notices replacement, not changes in place.
            menu.keys = {key: new if target == old else target for key, target in menu.keys.items()}
        if menu.fallback == old:
            menu.fallback = new
