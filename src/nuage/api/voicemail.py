"""The caller's voicemail (F17): their messages, new first; listen, mark heard, delete.
Group boxes are not listed here (the app shows them with the groups)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from nuage.api.auth import Caller
from nuage.api.errors import ApiError
from nuage.api.ids import RowId
from nuage.pbx.voicemail.service import Voicemail
from nuage.store.models import VoicemailMessage


class CallerOut(BaseModel):
    number: str
    name: str


class VoicemailOut(BaseModel):
    id: int
    caller: CallerOut
    created_at: datetime
    duration_ms: int
    new: bool = Field(description="not listened to yet")

    @classmethod
    def of(cls, message: VoicemailMessage) -> VoicemailOut:
        return cls(
            id=message.id,
            caller=CallerOut(number=message.caller, name=message.caller_name),
            created_at=message.created_at,
            duration_ms=message.duration_ms,
            new=message.heard_at is None,
        )


router = APIRouter(tags=["voicemail"])


def _voicemail(request: Request) -> Voicemail:
    voicemail: Voicemail = request.app.state.voicemail
    return voicemail


@router.get("/me/voicemail", response_model=list[VoicemailOut])
async def my_messages(caller: Caller, request: Request) -> list[VoicemailOut]:
    """My personal box's messages: new ones first, then the others, newest first."""
    messages = await _voicemail(request).store.messages(caller.company_id, caller.user_id)
    return [VoicemailOut.of(message) for message in messages]


@router.get(
    "/me/voicemail/{message_id}/audio",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}, "description": "the message (mono WAV)"}},
)
async def message_audio(caller: Caller, request: Request, message_id: RowId) -> FileResponse:
    """A message's audio (8 kHz mono WAV), for the box's owner only."""
    store = _voicemail(request).store
    message = await store.message(caller.company_id, caller.user_id, message_id)
    path = store.data_dir / message.path if message is not None else None
    if path is None or not path.is_file():
        raise ApiError(404, "not_found", f"No message {message_id} of yours")
    return FileResponse(path, media_type="audio/wav", filename=f"voicemail-{message_id}.wav")


@router.post("/me/voicemail/{message_id}/heard", status_code=204)
async def mark_heard(caller: Caller, request: Request, message_id: RowId) -> Response:
    """The message is no longer new (phones' message-waiting lamps follow)."""
    if not await _voicemail(request).mark_heard(caller.company_id, caller.user_id, message_id):
        raise ApiError(404, "not_found", f"No message {message_id} of yours")
    return Response(status_code=204)


@router.delete("/me/voicemail/{message_id}", status_code=204)
async def delete_message(caller: Caller, request: Request, message_id: RowId) -> Response:
    if not await _voicemail(request).delete(caller.company_id, caller.user_id, message_id):
        raise ApiError(404, "not_found", f"No message {message_id} of yours")
    return Response(status_code=204)
