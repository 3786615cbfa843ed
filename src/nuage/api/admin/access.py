"""Who may call the admin routes, and the service they use.

Engineers (the provider's) may administer every company; a company's administrators
only theirs. A caller who may not see a company gets 404 for its id, exactly as for an
id that does not exist, never a 403 that would confirm it exists.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from nuage.api.auth import Caller
from nuage.api.errors import ApiError
from nuage.api.ids import RowId
from nuage.pbx.admin import Administration
from nuage.pbx.app_sessions import Principal

__all__ = ["CompanyAdmin", "Engineer", "EngineerOf", "administration"]


def administration(request: Request) -> Administration:
    admin: Administration = request.app.state.admin  # set with the sessions
    return admin


def _not_found(company_id: int) -> ApiError:
    return ApiError(404, "not_found", f"No company {company_id}")


async def _engineer(caller: Caller) -> Principal:
    if caller.role != "engineer":
        raise ApiError(403, "forbidden", "For the provider's engineers only")
    return caller


async def _engineer_of(company_id: RowId, caller: Caller) -> Principal:
    if caller.role == "engineer":
        return caller
    if caller.company_id != company_id:
        raise _not_found(company_id)
    raise ApiError(403, "forbidden", "For the provider's engineers only")


async def _company_admin(company_id: RowId, caller: Caller) -> Principal:
    if caller.role == "engineer":
        return caller
    if caller.company_id != company_id:
        raise _not_found(company_id)
    if caller.role != "admin":
        raise ApiError(403, "forbidden", "For the company's administrators only")
    return caller


# An engineer, for the routes without a company in their path.
Engineer = Annotated[Principal, Depends(_engineer)]
# An engineer, for a route with {company_id}.
EngineerOf = Annotated[Principal, Depends(_engineer_of)]
# An engineer, or an administrator of the company of the path's {company_id}.
CompanyAdmin = Annotated[Principal, Depends(_company_admin)]
