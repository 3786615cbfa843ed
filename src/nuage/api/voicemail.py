"""Voicemail boxes through the API (F17, P5): the caller's own box at /me/voicemail, and
the boxes of the groups they are a member of at /me/groups/{group_id}/voicemail (never
in the personal list). The same operations on each: messages (new first), listen, mark
heard, delete, the box's own greeting."""

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from nuage.api.auth import Caller
from nuage.api.errors import ApiError
from nuage.api.ids import RowId
from nuage.media.prompts import PromptFormatError, read_wav
from nuage.pbx.directory import Directory
from nuage.pbx.voicemail.service import Voicemail
from nuage.pbx.voicemail.store import BoxKey
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
    group_id: int | None = Field(None, description="the group whose box holds it; null: mine")

    @classmethod
    def of(cls, message: VoicemailMessage, box: BoxKey) -> "VoicemailOut":
        return cls(
            id=message.id,
            caller=CallerOut(number=message.caller, name=message.caller_name),
            created_at=message.created_at,
            duration_ms=message.duration_ms,
            new=message.heard_at is None,
            group_id=box.group_id,
        )


def _voicemail(request: Request) -> Voicemail:
    voicemail: Voicemail = request.app.state.voicemail
    return voicemail


def _own_box(caller: Caller) -> BoxKey:
    return BoxKey(caller.company_id, user_id=caller.user_id)


def _group_box(caller: Caller, request: Request, group_id: RowId) -> BoxKey:
    """The box of a group the caller is a member of; 404 for any other group."""
    directory: Directory = request.app.state.directory
    group = directory.group_by_id(caller.company_id, group_id)
    if group is None or caller.user_id not in group.member_ids:
        raise ApiError(404, "not_found", f"No group {group_id} of yours")
    return BoxKey(caller.company_id, group_id=group.id)


# An uploaded greeting: 8 kHz mono 16-bit PCM WAV (what the phones hear, as is), from one
# second to a minute; bigger bodies are refused before they are read whole.
GREETING_MIN_SECONDS = 1.0
GREETING_MAX_SECONDS = 60.0
_GREETING_MAX_BYTES = 44 + int(GREETING_MAX_SECONDS * 8000) * 2 + 1024


def _box_router(prefix: str, box_of: Callable[..., BoxKey], whose: str, tag: str) -> APIRouter:
    """The routes of one kind of box under ``prefix``; ``box_of`` is the dependency that
    finds the box (and refuses anyone else's); ``whose`` names it in errors. (This
    module's annotations are evaluated where they are written, not postponed: the
    routes' ``Box`` is local.)"""
    Box = Annotated[BoxKey, Depends(box_of)]
    router = APIRouter(prefix=prefix, tags=[tag])

    @router.get("", response_model=list[VoicemailOut])
    async def messages(box: Box, request: Request) -> list[VoicemailOut]:
        """The box's messages: new ones first, then the others, newest first."""
        found = await _voicemail(request).store.messages(box)
        return [VoicemailOut.of(message, box) for message in found]

    @router.get(
        "/{message_id}/audio",
        response_class=FileResponse,
        responses={200: {"content": {"audio/wav": {}}, "description": "the message (mono WAV)"}},
    )
    async def audio(box: Box, request: Request, message_id: RowId) -> FileResponse:
        """A message's audio (8 kHz mono WAV)."""
        store = _voicemail(request).store
        message = await store.message(box, message_id)
        path = store.data_dir / message.path if message is not None else None
        if path is None or not path.is_file():
            raise ApiError(404, "not_found", f"No message {message_id} {whose}")
        return FileResponse(path, media_type="audio/wav", filename=f"voicemail-{message_id}.wav")

    @router.post("/{message_id}/heard", status_code=204)
    async def heard(box: Box, request: Request, message_id: RowId) -> Response:
        """The message is no longer new (message-waiting lamps follow)."""
        if not await _voicemail(request).mark_heard(box, message_id):
            raise ApiError(404, "not_found", f"No message {message_id} {whose}")
        return Response(status_code=204)

    @router.put(
        "/greeting",
        status_code=204,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                "description": "8 kHz mono 16-bit PCM WAV, 1 to 60 seconds",
            }
        },
    )
    async def upload_greeting(box: Box, request: Request) -> Response:
        """The box's own greeting, played to callers instead of the default one."""
        voicemail = _voicemail(request)
        final = voicemail.store.greeting_path(box)
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
            raise ApiError(
                507, "storage_full", f"The greeting could not be stored: {exc}"
            ) from None
        try:
            pcm = await asyncio.to_thread(read_wav, partial)
        except PromptFormatError as exc:
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise ApiError(422, "invalid", f"Not a usable greeting: {exc}") from None
        seconds = len(pcm) / 8000
        if not GREETING_MIN_SECONDS <= seconds <= GREETING_MAX_SECONDS:
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise ApiError(422, "invalid", f"A greeting lasts 1 to 60 seconds, not {seconds:.1f}")
        await voicemail.store.replace_greeting(box, partial)
        return Response(status_code=204)

    @router.delete("/greeting", status_code=204)
    async def delete_greeting(box: Box, request: Request) -> Response:
        """Back to the default greeting."""
        if not await _voicemail(request).store.clear_greeting(box):
            raise ApiError(404, "not_found", f"No greeting of its own {whose}")
        return Response(status_code=204)

    # Last: "/greeting" above must not be taken for a message id.
    @router.delete("/{message_id}", status_code=204)
    async def delete(box: Box, request: Request, message_id: RowId) -> Response:
        if not await _voicemail(request).delete(box, message_id):
            raise ApiError(404, "not_found", f"No message {message_id} {whose}")
        return Response(status_code=204)

    return router


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


router = APIRouter()
router.include_router(_box_router("/me/voicemail", _own_box, "of yours", "voicemail"))
router.include_router(
    _box_router(
        "/me/groups/{group_id}/voicemail", _group_box, "in this group's box", "group voicemail"
    )
)
