"""Companies, for the provider's engineers: created with the default statuses (as a plan
without [[statuses]]), changed, and deleted once they have no users and no numbers."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from nuage.pbx.admin.errors import ConflictError
from nuage.pbx.admin.patches import Patch, apply_patch
from nuage.pbx.admin.statuses import check_forwards
from nuage.pbx.admin.store import AdminStore
from nuage.pbx.provision import (
    CompanyPlan,
    PolicyPlan,
    assign,
    company_values,
    default_policy,
    default_statuses,
    status_values,
)
from nuage.store import repositories
from nuage.store.models import Company, Status

__all__ = ["Companies", "CompanyEntry", "company_entry"]


class CompanyEntry(CompanyPlan):
    """A plan's [company] and [policy] tables in one."""

    policy: PolicyPlan | None = Field(
        None, description="External calls allowed; none: to the company's own country only."
    )

    def effective_policy(self) -> PolicyPlan:
        return self.policy or default_policy(self.country)


def company_entry(company: Company) -> dict[str, Any]:
    """The company's row as the fields of a CompanyEntry."""
    return {
        "name": company.name,
        "domain": company.domain,
        "country": company.country,
        "language": company.language,
        "recording_announcement": company.recording_announcement,
        "policy": {
            "allowed_countries": company.allowed_countries,
            "blocked_prefixes": company.blocked_prefixes,
            "max_external_calls": company.max_external_calls,
        },
    }


class Companies:
    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def list(self) -> list[Company]:
        """Every company, by name."""
        async with self._store.db.session() as session:
            return await repositories.companies(session)

    async def get(self, company_id: int) -> Company:
        async with self._store.reading(company_id) as (_, company):
            return company

    async def create(self, entry: CompanyEntry) -> Company:
        async with self._store.changes() as session:
            if await repositories.company_by_domain(session, entry.domain) is not None:
                raise ConflictError(
                    "domain_taken", f"{entry.domain} is already in use", field="domain"
                )
            company = Company(**company_values(entry, entry.effective_policy()))
            session.add(company)
            await session.flush()
            for position, status in enumerate(default_statuses(entry.language)):
                session.add(
                    Status(
                        company_id=company.id,
                        key=status.key,
                        **status_values(status, position, None),
                    )
                )
        return company

    async def update(self, company_id: int, patch: Patch[CompanyEntry]) -> Company:
        """Change the fields sent (the domain is fixed: the users' SIP secrets are bound
        to it); refused when a status would forward where the new policy forbids."""
        async with self._store.changing(company_id) as (session, company):
            entry = apply_patch(CompanyEntry, company_entry(company), patch.changes())
            assign(company, company_values(entry, entry.effective_policy()))
            await check_forwards(session, company)
        return company

    async def delete(self, company_id: int) -> None:
        """Delete the company with its statuses, trunks, voice menus and call history.
        Refused while it has users or numbers: they make and receive calls, and deleting
        them one by one is a decision about each."""
        async with self._store.changing(company_id) as (session, company):
            users = await repositories.users(session, company.id)
            numbers = await repositories.numbers(session, company.id)
            if users or numbers:
                raise ConflictError(
                    "in_use",
                    f"The company still has {len(users)} users and {len(numbers)} numbers; "
                    "delete them first",
                )
            await session.delete(company)
