"""Statuses (F2, F3): the company's statuses as provisioned, and the caller's own."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from nuage.api.auth import Caller
from nuage.api.errors import ApiError
from nuage.pbx.statuses import StatusService, UnknownStatusError
from nuage.store.models import Status


class StatusOut(BaseModel):
    key: str
    name: str
    colour: str | None
    # What calls to a user in this status do: ring, voicemail, forward, busy.
    behaviour: str
    forward_to: str | None
    pause_acd: bool

    @classmethod
    def of(cls, status: Status) -> StatusOut:
        return cls(
            key=status.key,
            name=status.name,
            colour=status.colour,
            behaviour=status.behaviour,
            forward_to=status.forward_to,
            pause_acd=status.pause_acd,
        )


class StatusIn(BaseModel):
    key: str = Field(min_length=1, max_length=32)


def _service(request: Request) -> StatusService:
    service: StatusService = request.app.state.statuses
    return service


router = APIRouter(tags=["statuses"])


@router.get("/statuses", response_model=list[StatusOut])
async def company_statuses(caller: Caller, request: Request) -> list[StatusOut]:
    """The company's statuses, in the order of the app's menu."""
    return [StatusOut.of(status) for status in _service(request).statuses(caller.company_id)]


@router.get("/me/status", response_model=StatusOut)
async def my_status(caller: Caller, request: Request) -> StatusOut:
    return StatusOut.of(_service(request).current(caller.company_id, caller.user_id))


@router.put("/me/status", response_model=StatusOut)
async def set_my_status(caller: Caller, request: Request, body: StatusIn) -> StatusOut:
    """Choose a status: from the next call on, calls to the caller follow it."""
    try:
        status = await _service(request).set(caller.company_id, caller.user_id, body.key)
    except UnknownStatusError as unknown:
        raise ApiError(422, "invalid", str(unknown)) from None
    return StatusOut.of(status)
