"""The caller's calls: live ones with every in-call action (the call-control service of
the in-call issue, as it is), the call log (F16), recordings, and the caller's devices."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, field_validator

from nuage.api.auth import Caller
from nuage.api.errors import ApiError
from nuage.api.ids import MAX_ID, RowId
from nuage.media.ports import PortsExhaustedError
from nuage.media.quality import QualitySample
from nuage.pbx.call_log import CallLog, LogEntry
from nuage.pbx.click_to_call import ClickToCall, NoDeviceError
from nuage.pbx.control import CallControl, CallControlError, CallNotFoundError, LiveCall
from nuage.pbx.dialing import Party
from nuage.pbx.directory import Directory
from nuage.pbx.location import LocationService

# What people type between digits; dialable is then an optional + and digits, * or #.
_SEPARATORS = re.compile(r"[\s().\-/]")
_DIALABLE = re.compile(r"\+?[0-9*#]{1,32}")


class PartyOut(BaseModel):
    number: str
    name: str

    @classmethod
    def of(cls, party: Party) -> PartyOut:
        return cls(number=party.number, name=party.name)


class QualityOut(BaseModel):
    mos: float
    loss_percent: float
    jitter_ms: float
    rtt_ms: float | None

    @classmethod
    def of(cls, sample: QualitySample | None) -> QualityOut | None:
        if sample is None:
            return None
        return cls(
            mos=round(sample.mos, 2),
            loss_percent=round(sample.loss_percent, 2),
            jitter_ms=round(sample.jitter_ms, 1),
            rtt_ms=None if sample.rtt_ms is None else round(sample.rtt_ms, 1),
        )


class LiveCallOut(BaseModel):
    id: str
    direction: str
    incoming: bool = Field(description="the user was called (else they placed the call)")
    other: PartyOut
    state: str  # ringing, talking, on hold, held, conference
    answered_at: datetime | None
    recording: bool
    recording_since: datetime | None = Field(
        description="when the recording started; it stops by itself 5 minutes later"
    )
    quality: QualityOut | None
    participants: list[PartyOut]

    @classmethod
    def of(cls, call: LiveCall) -> LiveCallOut:
        return cls(
            id=call.id,
            direction=call.direction,
            incoming=call.incoming,
            other=PartyOut.of(call.other),
            state=call.state,
            answered_at=call.answered_at,
            recording=call.recording,
            recording_since=call.recording_since,
            quality=QualityOut.of(call.quality),
            participants=[PartyOut.of(party) for party in call.participants],
        )


class DialIn(BaseModel):
    target: str = Field(
        min_length=1,
        max_length=64,
        description="an extension or a number, as dialled on a phone (spaces, dots, dashes, "
        "slashes and parentheses are ignored)",
    )

    @field_validator("target")
    @classmethod
    def _dialable(cls, value: str) -> str:
        digits = _SEPARATORS.sub("", value)
        if not _DIALABLE.fullmatch(digits):
            raise ValueError("must be an extension or a phone number")
        return digits


class CallPlacedOut(BaseModel):
    id: str  # the call's id, as in GET /me/calls and the call.* events


class TransferIn(BaseModel):
    target: str = Field(min_length=1, max_length=64, description="an extension or a number")


class OtherCallIn(BaseModel):
    other_call_id: str = Field(min_length=1, max_length=255)


class DigitsIn(BaseModel):
    digits: str = Field(min_length=1, max_length=32, pattern=r"^[0-9*#A-Da-d]+$")


class RecordingOut(BaseModel):
    id: int
    duration_ms: int
    started_at: datetime


class LogEntryOut(BaseModel):
    id: int
    direction: Literal["incoming", "outgoing"]
    other: PartyOut
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    reason: str = Field(
        description='why it ended so: the refusal or failure (e.g. "486 Busy Here"), or '
        "what ended it"
    )
    missed: bool
    recordings: list[RecordingOut]

    @classmethod
    def of(cls, entry: LogEntry) -> LogEntryOut:
        record = entry.record
        return cls(
            id=record.id,
            direction="incoming" if entry.incoming else "outgoing",
            other=PartyOut(
                number=record.caller if entry.incoming else record.callee,
                name=record.caller_name if entry.incoming else entry.callee_name,
            ),
            started_at=record.started_at,
            answered_at=record.answered_at,
            ended_at=record.ended_at,
            outcome=record.outcome,
            reason=record.reason,
            missed=entry.missed,
            recordings=[
                RecordingOut(id=r.id, duration_ms=r.duration_ms, started_at=r.started_at)
                for r in entry.recordings
            ],
        )


class DeviceOut(BaseModel):
    contact: str
    user_agent: str | None
    transport: str
    expires_at: datetime


router = APIRouter(tags=["calls"])


def _control(request: Request) -> CallControl:
    control: CallControl = request.app.state.control
    return control


async def _act(action: Awaitable[None]) -> Response:
    """Run a call-control action; its refusals in the API's error shape."""
    try:
        await action
    except CallNotFoundError:
        raise ApiError(404, "not_found", "No such call of yours") from None
    except CallControlError as refused:
        raise ApiError(409, "conflict", str(refused)) from None
    return Response(status_code=204)


@router.get("/me/calls", response_model=list[LiveCallOut])
async def my_calls(caller: Caller, request: Request) -> list[LiveCallOut]:
    calls = _control(request).calls(caller.company_id, caller.user_id)
    return [LiveCallOut.of(call) for call in calls]


@router.post("/me/calls", status_code=202, response_model=CallPlacedOut)
async def place_call(caller: Caller, request: Request, body: DialIn) -> CallPlacedOut:
    """Click-to-call: the caller's registered devices ring; the one answered calls the
    target, as if dialled on it. The call then shows in GET /me/calls and the events."""
    directory: Directory = request.app.state.directory
    company = directory.company(caller.company_id)
    user = directory.user_by_id(caller.company_id, caller.user_id)
    if company is None or user is None:
        raise ApiError(404, "not_found", "Your account is being removed")
    click_to_call: ClickToCall = request.app.state.click_to_call
    try:
        call_id = await click_to_call.dial(company, user, body.target)
    except NoDeviceError:
        raise ApiError(409, "no_device", "None of your phones is registered") from None
    except PortsExhaustedError:
        raise ApiError(503, "overloaded", "The server has no media ports left") from None
    return CallPlacedOut(id=call_id)


@router.post("/me/calls/{call_id}/hangup", status_code=204)
async def hang_up(caller: Caller, request: Request, call_id: str) -> Response:
    control = _control(request)
    return await _act(control.hang_up(caller.company_id, caller.user_id, call_id))


@router.post("/me/calls/{call_id}/hold", status_code=204)
async def hold(caller: Caller, request: Request, call_id: str) -> Response:
    control = _control(request)
    return await _act(control.hold(caller.company_id, caller.user_id, call_id))


@router.post("/me/calls/{call_id}/resume", status_code=204)
async def resume(caller: Caller, request: Request, call_id: str) -> Response:
    control = _control(request)
    return await _act(control.resume(caller.company_id, caller.user_id, call_id))


@router.post("/me/calls/{call_id}/transfer", status_code=204)
async def transfer(caller: Caller, request: Request, call_id: str, body: TransferIn) -> Response:
    """Blind transfer: the other party is connected to the target (F14)."""
    control = _control(request)
    return await _act(control.transfer(caller.company_id, caller.user_id, call_id, body.target))


@router.post("/me/calls/{call_id}/attended-transfer", status_code=204)
async def attended_transfer(
    caller: Caller, request: Request, call_id: str, body: OtherCallIn
) -> Response:
    """Join the parties of two of the caller's calls, and leave both (F13)."""
    control = _control(request)
    return await _act(
        control.attended_transfer(caller.company_id, caller.user_id, call_id, body.other_call_id),
    )


@router.post("/me/calls/{call_id}/conference", status_code=204)
async def conference(caller: Caller, request: Request, call_id: str, body: OtherCallIn) -> Response:
    """Merge another of the caller's calls into this one (F15)."""
    control = _control(request)
    return await _act(
        control.conference(caller.company_id, caller.user_id, call_id, body.other_call_id),
    )


@router.post("/me/calls/{call_id}/recording", status_code=204)
async def start_recording(caller: Caller, request: Request, call_id: str) -> Response:
    control = _control(request)
    return await _act(control.start_recording(caller.company_id, caller.user_id, call_id))


@router.delete("/me/calls/{call_id}/recording", status_code=204)
async def stop_recording(caller: Caller, request: Request, call_id: str) -> Response:
    control = _control(request)
    return await _act(control.stop_recording(caller.company_id, caller.user_id, call_id))


@router.post("/me/calls/{call_id}/dtmf", status_code=204)
async def send_dtmf(caller: Caller, request: Request, call_id: str, body: DigitsIn) -> Response:
    control = _control(request)
    return await _act(control.send_dtmf(caller.company_id, caller.user_id, call_id, body.digits))


@router.get("/me/calllog", response_model=list[LogEntryOut])
async def call_log(
    caller: Caller,
    request: Request,
    filter: Annotated[Literal["all", "missed", "recordings"], Query()] = "all",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="last id of the page before")
    ] = None,
) -> list[LogEntryOut]:
    """The caller's own calls, newest first (F16)."""
    log: CallLog = request.app.state.call_log
    entries = await log.entries(
        caller.company_id, caller.user_id, kind=filter, limit=limit, before_id=before
    )
    return [LogEntryOut.of(entry) for entry in entries]


@router.get(
    "/recordings/{recording_id}",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def recording_audio(caller: Caller, request: Request, recording_id: RowId) -> FileResponse:
    """A recording's WAV, for its owner only (who started it)."""
    log: CallLog = request.app.state.call_log
    path = await log.recording_file(caller.company_id, caller.user_id, recording_id)
    if path is None:
        raise ApiError(404, "not_found", f"No recording {recording_id} of yours")
    return FileResponse(path, media_type="audio/wav", filename=f"recording-{recording_id}.wav")


@router.get("/me/devices", response_model=list[DeviceOut])
async def my_devices(caller: Caller, request: Request) -> list[DeviceOut]:
    """The caller's registered phones."""
    location: LocationService = request.app.state.location
    bindings = location.bindings(caller.company_id, caller.user_id, datetime.now(UTC))
    return [
        DeviceOut(
            contact=binding.contact,
            user_agent=binding.user_agent,
            transport=binding.peer.transport,
            expires_at=binding.expires_at,
        )
        for binding in bindings
    ]
