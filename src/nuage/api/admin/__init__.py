"""The admin part of the API (issue 4), shaped after Wazo Platform's confd: engineers
manage companies; a company's administrators, and engineers, its users, groups, trunks,
numbers, statuses and voicemail boxes' settings. Lists answer {"total", "items"};
creation 201 with the new item; a change (PATCH, the fields sent) the changed item;
deletion 204."""

from __future__ import annotations

from fastapi import APIRouter

from nuage.api.admin import companies, groups, numbers, statuses, trunks, users, voicemail

__all__ = ["router"]

router = APIRouter()
for module in (companies, users, groups, statuses, numbers, trunks, voicemail):
    router.include_router(module.router)
