"""The caller's voicemail (F17): their messages, new first; listen, mark heard, delete;
their own greeting. Group boxes are not listed here (the app shows them with the
groups)."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from nuage.api.auth import Caller
from nuage.api.errors import ApiError
from nuage.api.ids import RowId
from nuage.media.prompts import PromptFormatError, read_wav
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


# An uploaded greeting: 8 kHz mono 16-bit PCM WAV (what the phones hear, as is), from one
# second to a minute; bigger bodies are refused before they are read whole.
GREETING_MIN_SECONDS = 1.0
GREETING_MAX_SECONDS = 60.0
_GREETING_MAX_BYTES = 44 + int(GREETING_MAX_SECONDS * 8000) * 2 + 1024


@router.put(
    "/me/voicemail/greeting",
    status_code=204,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
            "description": "8 kHz mono 16-bit PCM WAV, 1 to 60 seconds",
        }
    },
)
async def upload_greeting(caller: Caller, request: Request) -> Response:
    """My own greeting, played to callers instead of the default one."""
    voicemail = _voicemail(request)
    final = voicemail.store.greeting_path(caller.company_id, caller.user_id)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _GREETING_MAX_BYTES:
            raise ApiError(413, "too_large", "A greeting lasts at most a minute")
    partial = final.with_name(f"{final.stem}.upload-{uuid.uuid4().hex}.wav")
    try:
        await asyncio.to_thread(_write_durably, partial, bytes(body))
    except OSError as exc:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise ApiError(507, "storage_full", f"The greeting could not be stored: {exc}") from None
    try:
        pcm = await asyncio.to_thread(read_wav, partial)
    except PromptFormatError as exc:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise ApiError(422, "invalid", f"Not a usable greeting: {exc}") from None
    seconds = len(pcm) / 8000
    if not GREETING_MIN_SECONDS <= seconds <= GREETING_MAX_SECONDS:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise ApiError(422, "invalid", f"A greeting lasts 1 to 60 seconds, not {seconds:.1f}")
    await voicemail.store.replace_greeting(caller.company_id, caller.user_id, partial)
    return Response(status_code=204)


@router.delete("/me/voicemail/greeting", status_code=204)
async def delete_greeting(caller: Caller, request: Request) -> Response:
    """Back to the default greeting."""
    if not await _voicemail(request).store.clear_greeting(caller.company_id, caller.user_id):
        raise ApiError(404, "not_found", "You have no greeting of your own")
    return Response(status_code=204)


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


# Last: "/me/voicemail/greeting" above must not be taken for a message id.
@router.delete("/me/voicemail/{message_id}", status_code=204)
async def delete_message(caller: Caller, request: Request, message_id: RowId) -> Response:
    if not await _voicemail(request).delete(caller.company_id, caller.user_id, message_id):
        raise ApiError(404, "not_found", f"No message {message_id} of yours")
    return Response(status_code=204)
