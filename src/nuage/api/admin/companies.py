"""Companies, for the provider's engineers."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from nuage.api.admin.access import Engineer, EngineerOf, administration
from nuage.api.admin.listing import Listing
from nuage.api.ids import RowId
from nuage.pbx.admin.companies import CompanyEntry, company_entry
from nuage.pbx.admin.patches import Patch
from nuage.pbx.provision import PolicyPlan
from nuage.store.models import Company


class AdminCompanyOut(CompanyEntry):
    id: int = Field(description="The company's id, in the paths of its admin routes.")
    policy: PolicyPlan = Field(description="External calls allowed.")


def _out(company: Company) -> AdminCompanyOut:
    return AdminCompanyOut.model_validate({"id": company.id, **company_entry(company)})


router = APIRouter(prefix="/companies", tags=["admin: companies"])


@router.get("", response_model=Listing[AdminCompanyOut])
async def list_companies(caller: Engineer, request: Request) -> Listing[AdminCompanyOut]:
    """Every company, by name."""
    companies = await administration(request).companies.list()
    return Listing.of([_out(company) for company in companies])


@router.post("", status_code=201, response_model=AdminCompanyOut)
async def create_company(caller: Engineer, request: Request, body: CompanyEntry) -> AdminCompanyOut:
    """A new company, with the default statuses in its language; 409 `domain_taken`."""
    return _out(await administration(request).companies.create(body))


@router.get("/{company_id}", response_model=AdminCompanyOut)
async def get_company(company_id: RowId, caller: EngineerOf, request: Request) -> AdminCompanyOut:
    return _out(await administration(request).companies.get(company_id))


@router.patch("/{company_id}", response_model=AdminCompanyOut)
async def update_company(
    company_id: RowId, caller: EngineerOf, request: Request, body: Patch[CompanyEntry]
) -> AdminCompanyOut:
    """Change the fields sent; the domain is fixed. 409 `in_use` when a status would
    forward where the new policy forbids."""
    return _out(await administration(request).companies.update(company_id, body))


@router.delete("/{company_id}", status_code=204)
async def delete_company(company_id: RowId, caller: EngineerOf, request: Request) -> Response:
    """Delete the company with its statuses, trunks, voice menus and call history; 409
    `in_use` while it has users or numbers."""
    await administration(request).companies.delete(company_id)
    return Response(status_code=204)
