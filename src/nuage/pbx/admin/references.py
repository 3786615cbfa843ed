"""What routes calls to an extension: numbers, statuses that forward, IVR menus' keys and
fallbacks. Users are found by extension there, so an extension that is referred to cannot
just disappear."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.admin.errors import ConflictError
from nuage.store import repositories

__all__ = ["check_extension_free", "move_references", "references_to"]


async def check_extension_free(
    session: AsyncSession, company_id: int, extension: str, *, user_id: int | None = None
) -> None:
    """ConflictError unless the extension is free in the company (but for ``user_id``'s
    own): users and IVR menus share the numbering plan."""
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


async def references_to(session: AsyncSession, company_id: int, extension: str) -> list[str]:
    """What sends calls to ``extension``, in words ("number +3225550100", ...)."""
    found = [
        f"number {number.number}"
        for number in await repositories.numbers(session, company_id)
        if number.route == extension
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
    """Make what sends calls to extension ``old`` send them to ``new``: a user who changes
    extension keeps their numbers, forwards and menu keys."""
    for number in await repositories.numbers(session, company_id):
        if number.route == old:
            number.route = new
    for status in await repositories.statuses(session, company_id):
        if status.forward_to == old:
            status.forward_to = new
    for menu in await repositories.ivr_menus(session, company_id):
        if old in menu.keys.values():
            # A new dict: the JSON column notices replacement, not changes in place.
            menu.keys = {key: new if target == old else target for key, target in menu.keys.items()}
        if menu.fallback == old:
            menu.fallback = new
