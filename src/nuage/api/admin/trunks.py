"""A company's trunks: for its administrators and the provider's engineers. A trunk's
password is set, never shown."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from nuage.api.admin.access import CompanyAdmin, administration
from nuage.api.admin.listing import Listing
from nuage.api.ids import RowId
from nuage.pbx.admin.patches import Patch
from nuage.pbx.admin.trunks import trunk_entry
from nuage.pbx.provision import TrunkPlan, TrunkSettings
from nuage.store.models import Trunk


class TrunkOut(TrunkSettings):
    id: int = Field(description="The trunk's id.")


def _out(trunk: Trunk) -> TrunkOut:
    settings = trunk_entry(trunk)
    del settings["password"]
    return TrunkOut.model_validate({"id": trunk.id, **settings})


router = APIRouter(prefix="/companies/{company_id}/trunks", tags=["admin: trunks"])


@router.get("", response_model=Listing[TrunkOut])
async def list_trunks(
    company_id: RowId, caller: CompanyAdmin, request: Request
) -> Listing[TrunkOut]:
    """The company's trunks, by name."""
    trunks = await administration(request).trunks.list(company_id)
    return Listing.of([_out(trunk) for trunk in trunks])


@router.post("", status_code=201, response_model=TrunkOut)
async def create_trunk(
    company_id: RowId, caller: CompanyAdmin, request: Request, body: TrunkPlan
) -> TrunkOut:
    """A new trunk; 409 `name_taken`."""
    return _out(await administration(request).trunks.create(company_id, body))


@router.get("/{trunk_id}", response_model=TrunkOut)
async def get_trunk(
    company_id: RowId, trunk_id: RowId, caller: CompanyAdmin, request: Request
) -> TrunkOut:
    return _out(await administration(request).trunks.get(company_id, trunk_id))


@router.patch("/{trunk_id}", response_model=TrunkOut)
async def update_trunk(
    company_id: RowId,
    trunk_id: RowId,
    caller: CompanyAdmin,
    request: Request,
    body: Patch[TrunkPlan],
) -> TrunkOut:
    """Change the fields sent."""
    return _out(await administration(request).trunks.update(company_id, trunk_id, body))


@router.delete("/{trunk_id}", status_code=204)
async def delete_trunk(
    company_id: RowId, trunk_id: RowId, caller: CompanyAdmin, request: Request
) -> Response:
    await administration(request).trunks.delete(company_id, trunk_id)
    return Response(status_code=204)
