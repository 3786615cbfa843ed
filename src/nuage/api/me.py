"""The caller's own profile."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from nuage.api.auth import Caller
from nuage.api.errors import ApiError
from nuage.pbx.directory import Directory


class CompanyOut(BaseModel):
    id: int
    name: str
    domain: str
    country: str = Field(
        description="ISO 3166 alpha-2: numbers without a country code are read in it"
    )
    language: str


class MeOut(BaseModel):
    id: int
    name: str
    extension: str
    email: str
    role: str
    company: CompanyOut


router = APIRouter(tags=["me"])


@router.get("/me", response_model=MeOut)
async def me(caller: Caller, request: Request) -> MeOut:
    directory: Directory = request.app.state.directory  # set with the sessions
    user = directory.user_by_id(caller.company_id, caller.user_id)
    company = directory.company(caller.company_id)
    if user is None or company is None:
        # Deleted since the token was issued (the directory reloads within seconds).
        raise ApiError(401, "invalid_token", "This account no longer exists")
    return MeOut(
        id=user.id,
        name=user.name,
        extension=user.extension,
        email=user.email,
        role=user.role,
        company=CompanyOut(
            id=company.id,
            name=company.name,
            domain=company.domain,
            country=company.country,
            language=company.language,
        ),
    )
