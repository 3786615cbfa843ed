"""A company's users: for its administrators and the provider's engineers. Passwords
are set, never shown."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from nuage.api.admin.access import CompanyAdmin, administration
from nuage.api.admin.listing import Listing
from nuage.api.ids import RowId
from nuage.pbx.admin.patches import Patch
from nuage.pbx.admin.users import user_profile
from nuage.pbx.provision import UserPlan, UserProfile
from nuage.store.models import User


class UserOut(UserProfile):
    id: int = Field(description="The user's id.")


def _out(user: User) -> UserOut:
    return UserOut.model_validate({"id": user.id, **user_profile(user)})


router = APIRouter(prefix="/companies/{company_id}/users", tags=["admin: users"])


@router.get("", response_model=Listing[UserOut])
async def list_users(company_id: RowId, caller: CompanyAdmin, request: Request) -> Listing[UserOut]:
    """The company's users, by extension."""
    users = await administration(request).users.list(company_id)
    return Listing.of([_out(user) for user in users])


@router.post("", status_code=201, response_model=UserOut)
async def create_user(
    company_id: RowId, caller: CompanyAdmin, request: Request, body: UserPlan
) -> UserOut:
    """A new user, who can log in and register phones at once. 409 `extension_taken`,
    `email_taken`; 403 for an engineer account unless the caller is an engineer."""
    users = administration(request).users
    user = await users.create(company_id, body, by_engineer=caller.role == "engineer")
    return _out(user)


@router.get("/{user_id}", response_model=UserOut)
async def get_user(
    company_id: RowId, user_id: RowId, caller: CompanyAdmin, request: Request
) -> UserOut:
    return _out(await administration(request).users.get(company_id, user_id))


@router.patch("/{user_id}", response_model=UserOut)
async def update_user(
    company_id: RowId, user_id: RowId, caller: CompanyAdmin, request: Request, body: Patch[UserPlan]
) -> UserOut:
    """Change the fields sent. A new extension needs `sip_password` too, and takes along
    the numbers, status forwards and menu keys that went to the old one."""
    users = administration(request).users
    user = await users.update(company_id, user_id, body, by_engineer=caller.role == "engineer")
    return _out(user)


@router.delete("/{user_id}", status_code=204)
async def delete_user(
    company_id: RowId, user_id: RowId, caller: CompanyAdmin, request: Request
) -> Response:
    """Delete the user with their phones' registrations, app sessions and favorites;
    409 `in_use` while a number, a status or a voice menu sends calls to them."""
    users = administration(request).users
    await users.delete(company_id, user_id, by_engineer=caller.role == "engineer")
    return Response(status_code=204)
