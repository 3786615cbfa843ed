"""A company's groups: for its administrators and the provider's engineers. Members are
named by their extensions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from nuage.api.admin.access import CompanyAdmin, administration
from nuage.api.admin.listing import Listing
from nuage.api.ids import RowId
from nuage.pbx.admin.groups import GroupRow
from nuage.pbx.admin.patches import Patch
from nuage.pbx.provision import GroupPlan


class GroupOut(GroupPlan):
    id: int = Field(description="The group's id.")


def _out(row: GroupRow) -> GroupOut:
    return GroupOut.model_validate({"id": row.id, **row.entry.model_dump()})


router = APIRouter(prefix="/companies/{company_id}/groups", tags=["admin: groups"])


@router.get("", response_model=Listing[GroupOut])
async def list_groups(
    company_id: RowId, caller: CompanyAdmin, request: Request
) -> Listing[GroupOut]:
    """The company's groups, by extension."""
    groups = await administration(request).groups.list(company_id)
    return Listing.of([_out(group) for group in groups])


@router.post("", status_code=201, response_model=GroupOut)
async def create_group(
    company_id: RowId, caller: CompanyAdmin, request: Request, body: GroupPlan
) -> GroupOut:
    """A new group, reachable at once; 409 `extension_taken` (users, voice menus and
    groups share the extensions), 422 for a member who is no user of the company."""
    return _out(await administration(request).groups.create(company_id, body))


@router.get("/{group_id}", response_model=GroupOut)
async def get_group(
    company_id: RowId, group_id: RowId, caller: CompanyAdmin, request: Request
) -> GroupOut:
    return _out(await administration(request).groups.get(company_id, group_id))


@router.patch("/{group_id}", response_model=GroupOut)
async def update_group(
    company_id: RowId,
    group_id: RowId,
    caller: CompanyAdmin,
    request: Request,
    body: Patch[GroupPlan],
) -> GroupOut:
    """Change the fields sent (`members`: the whole list). A new extension takes along
    the numbers (to the group or to its voicemail box) and menu keys that went to the old
    one."""
    return _out(await administration(request).groups.update(company_id, group_id, body))


@router.delete("/{group_id}", status_code=204)
async def delete_group(
    company_id: RowId, group_id: RowId, caller: CompanyAdmin, request: Request
) -> Response:
    """Delete the group with its voicemail box's rows (box and messages); 409 `in_use`
    while a number or a voice menu sends calls to it."""
    await administration(request).groups.delete(company_id, group_id)
    return Response(status_code=204)
