"""A company's statuses (F2, F3): for its administrators and the provider's engineers;
a status is named by its key."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from nuage.api.admin.access import CompanyAdmin, administration
from nuage.api.admin.listing import Listing
from nuage.api.ids import RowId
from nuage.pbx.admin.patches import Patch
from nuage.pbx.admin.statuses import status_entry
from nuage.pbx.provision import StatusPlan
from nuage.store.models import Status


def _out(status: Status) -> StatusPlan:
    return StatusPlan.model_validate(status_entry(status))


router = APIRouter(prefix="/companies/{company_id}/statuses", tags=["admin: statuses"])


@router.get("", response_model=Listing[StatusPlan])
async def list_statuses(
    company_id: RowId, caller: CompanyAdmin, request: Request
) -> Listing[StatusPlan]:
    """The company's statuses, in the order of the app's menu."""
    statuses = await administration(request).statuses.list(company_id)
    return Listing.of([_out(status) for status in statuses])


@router.post("", status_code=201, response_model=StatusPlan)
async def create_status(
    company_id: RowId, caller: CompanyAdmin, request: Request, body: StatusPlan
) -> StatusPlan:
    """A new status, last in the menu; 409 `key_taken`, 422 for a forward target that
    is neither a user nor a number the policy allows."""
    return _out(await administration(request).statuses.create(company_id, body))


@router.get("/{key}", response_model=StatusPlan)
async def get_status(
    company_id: RowId, key: str, caller: CompanyAdmin, request: Request
) -> StatusPlan:
    return _out(await administration(request).statuses.get(company_id, key))


@router.patch("/{key}", response_model=StatusPlan)
async def update_status(
    company_id: RowId, key: str, caller: CompanyAdmin, request: Request, body: Patch[StatusPlan]
) -> StatusPlan:
    """Change the fields sent (not the key); in effect for the next call to its users.
    409 `conflict` when no status would ring any more."""
    return _out(await administration(request).statuses.update(company_id, key, body))


@router.delete("/{key}", status_code=204)
async def delete_status(
    company_id: RowId, key: str, caller: CompanyAdmin, request: Request
) -> Response:
    """Delete the status: its users are back on the default. 409 `conflict` for the last
    status that rings."""
    await administration(request).statuses.delete(company_id, key)
    return Response(status_code=204)
