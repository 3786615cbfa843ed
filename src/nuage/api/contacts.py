"""The company directory and favorites (F4, F5): colleagues with their live line state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from nuage.api.auth import Caller
from nuage.api.errors import ApiError
from nuage.api.event_feed import EventFeed
from nuage.api.ids import RowId
from nuage.pbx.contacts import Favorites, search
from nuage.pbx.directory import Directory
from nuage.pbx.presence import Presence
from nuage.store.models import User


class ContactOut(BaseModel):
    id: int
    name: str
    extension: str
    email: str
    numbers: list[str]  # the company numbers that ring this colleague (E.164)
    status: str  # the key of the status they chose (F2)
    status_name: str
    line_state: str  # offline, available, ringing, in call, on hold


def _services(request: Request) -> tuple[Directory, Favorites, Presence]:
    state = request.app.state
    return state.directory, state.favorites, state.presence


def _feed(request: Request) -> EventFeed:
    feed: EventFeed = request.app.state.feed
    return feed


def _contact(request: Request, user: User) -> ContactOut:
    directory, _, presence = _services(request)
    numbers = [n.number for n in directory.numbers(user.company_id) if n.route == user.extension]
    status = request.app.state.statuses.current(user.company_id, user.id)
    return ContactOut(
        id=user.id,
        name=user.name,
        extension=user.extension,
        email=user.email,
        numbers=numbers,
        status=status.key,
        status_name=status.name,
        line_state=presence.line_state(user.company_id, user.id),
    )


def _colleague(request: Request, caller: Caller, user_id: int) -> User:
    """A user of the caller's company; 404 for any other id (another company's users
    are not said to exist)."""
    directory, _, _ = _services(request)
    user = directory.user_by_id(caller.company_id, user_id)
    if user is None:
        raise ApiError(404, "not_found", f"No colleague {user_id}")
    return user


router = APIRouter(tags=["directory"])


@router.get("/directory", response_model=list[ContactOut])
async def directory_search(
    caller: Caller,
    request: Request,
    q: Annotated[str, Query(max_length=100, description="name, extension or email")] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ContactOut]:
    """Colleagues by name (accents and case ignored), extension or email."""
    directory, _, _ = _services(request)
    return [_contact(request, user) for user in search(directory, caller.company_id, q, limit)]


@router.get("/directory/{user_id}", response_model=ContactOut)
async def contact_card(caller: Caller, request: Request, user_id: RowId) -> ContactOut:
    return _contact(request, _colleague(request, caller, user_id))


@router.get("/favorites", response_model=list[ContactOut])
async def favorites(caller: Caller, request: Request) -> list[ContactOut]:
    _, favorites_of, _ = _services(request)
    users = await favorites_of.of(caller.company_id, caller.user_id)
    return [_contact(request, user) for user in users]


@router.put("/favorites/{user_id}", status_code=204)
async def add_favorite(caller: Caller, request: Request, user_id: RowId) -> Response:
    """Star a colleague (again: no change)."""
    user = _colleague(request, caller, user_id)
    if user.id == caller.user_id:
        raise ApiError(400, "bad_request", "One's own card cannot be a favorite")
    _, favorites_of, _ = _services(request)
    await favorites_of.add(caller.user_id, user.id)
    _feed(request).favorite_changed(caller.company_id, caller.user_id, user.id, on=True)
    return Response(status_code=204)


@router.delete("/favorites/{user_id}", status_code=204)
async def remove_favorite(caller: Caller, request: Request, user_id: RowId) -> Response:
    user = _colleague(request, caller, user_id)
    _, favorites_of, _ = _services(request)
    await favorites_of.remove(caller.user_id, user.id)
    _feed(request).favorite_changed(caller.company_id, caller.user_id, user.id, on=False)
    return Response(status_code=204)
