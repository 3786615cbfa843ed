"""The groups the caller is a member of (F18): the app shows the groups entry only to
members, and each group's voicemail box (api/voicemail.py) with its counts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from nuage.api.auth import Caller
from nuage.pbx.directory import Directory
from nuage.pbx.voicemail.service import Voicemail
from nuage.pbx.voicemail.store import BoxKey


class GroupOut(BaseModel):
    id: int
    name: str
    extension: str
    new_messages: int = Field(description="messages nobody listened to yet in its box")
    old_messages: int


router = APIRouter(tags=["groups"])


@router.get("/me/groups", response_model=list[GroupOut])
async def my_groups(caller: Caller, request: Request) -> list[GroupOut]:
    """The groups I am a member of, by extension; empty for users in none."""
    directory: Directory = request.app.state.directory
    voicemail: Voicemail = request.app.state.voicemail
    groups = directory.groups_of(caller.company_id, caller.user_id)
    out = []
    for group in groups:
        counts = await voicemail.store.counts(BoxKey.of(group))
        out.append(
            GroupOut(
                id=group.id,
                name=group.name,
                extension=group.extension,
                new_messages=counts.new,
                old_messages=counts.old,
            )
        )
    return out
