"""A company's inbound numbers: for its administrators and the provider's engineers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from nuage.api.admin.access import CompanyAdmin, administration
from nuage.api.admin.listing import Listing
from nuage.api.ids import RowId
from nuage.pbx.admin.patches import Patch
from nuage.pbx.provision import NumberPlan
from nuage.store.models import Number


class NumberOut(NumberPlan):
    id: int = Field(description="The number's id.")


def _out(number: Number) -> NumberOut:
    return NumberOut(id=number.id, number=number.number, route=number.route)


router = APIRouter(prefix="/companies/{company_id}/numbers", tags=["admin: numbers"])


@router.get("", response_model=Listing[NumberOut])
async def list_numbers(
    company_id: RowId, caller: CompanyAdmin, request: Request
) -> Listing[NumberOut]:
    """The company's numbers, in E.164, in order."""
    numbers = await administration(request).numbers.list(company_id)
    return Listing.of([_out(number) for number in numbers])


@router.post("", status_code=201, response_model=NumberOut)
async def create_number(
    company_id: RowId, caller: CompanyAdmin, request: Request, body: NumberPlan
) -> NumberOut:
    """A new number, routed at once; 409 `number_taken`, 422 for a route to no user or
    voice menu."""
    return _out(await administration(request).numbers.create(company_id, body))


@router.get("/{number_id}", response_model=NumberOut)
async def get_number(
    company_id: RowId, number_id: RowId, caller: CompanyAdmin, request: Request
) -> NumberOut:
    return _out(await administration(request).numbers.get(company_id, number_id))


@router.patch("/{number_id}", response_model=NumberOut)
async def update_number(
    company_id: RowId,
    number_id: RowId,
    caller: CompanyAdmin,
    request: Request,
    body: Patch[NumberPlan],
) -> NumberOut:
    """Change the number or its route."""
    return _out(await administration(request).numbers.update(company_id, number_id, body))


@router.delete("/{number_id}", status_code=204)
async def delete_number(
    company_id: RowId, number_id: RowId, caller: CompanyAdmin, request: Request
) -> Response:
    """Delete the number; 409 `in_use` when a status forwards to it and the policy does
    not allow calling it as an outside number."""
    await administration(request).numbers.delete(company_id, number_id)
    return Response(status_code=204)
