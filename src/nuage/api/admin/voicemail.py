"""The settings of a company's voicemail boxes, each named by the extension of its user
or group: for its administrators and the provider's engineers. The PIN is set, never
shown; the greeting is recorded through /me (by the user, or a group's members)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from nuage.api.admin.access import CompanyAdmin, administration
from nuage.api.ids import RowId
from nuage.pbx.provision import VoicemailSettings
from nuage.pbx.voicemail.store import BoxSettings

# The extension of a user or group of the company, in a path.
BoxExtension = Annotated[
    str, Path(pattern=r"^[1-9][0-9]{1,5}$", description="The extension of a user or group.")
]


class VoicemailBoxOut(BaseModel):
    """A box's settings, the defaults while none was set."""

    extension: str = Field(description="The user or group whose box this is.")
    enabled: bool = Field(description="Takes the calls its owner cannot (else they get 480).")
    has_pin: bool = Field(description="A PIN is asked when listening from a phone.")
    send_email: bool = Field(description="Each new message is mailed.")
    email: str | None = Field(
        description="Where to; none: a user's own address (a group's box mails nobody)."
    )
    attach_audio: bool = Field(description="The message's audio is attached to the mail.")
    max_seconds: int = Field(description="Longest message, in seconds.")
    has_greeting: bool = Field(description="A greeting of its own, not the default one.")


def _out(extension: str, settings: BoxSettings) -> VoicemailBoxOut:
    return VoicemailBoxOut(
        extension=extension,
        enabled=settings.enabled,
        has_pin=settings.pin_hash is not None,
        send_email=settings.send_email,
        email=settings.email,
        attach_audio=settings.attach_audio,
        max_seconds=settings.max_seconds,
        has_greeting=settings.greeting_path is not None,
    )


router = APIRouter(prefix="/companies/{company_id}/voicemail", tags=["admin: voicemail"])


@router.get("/{extension}", response_model=VoicemailBoxOut)
async def get_voicemail_box(
    company_id: RowId, extension: BoxExtension, caller: CompanyAdmin, request: Request
) -> VoicemailBoxOut:
    """The settings of the box of the user or group at that extension; 404 for an
    extension that is neither."""
    settings = await administration(request).voicemail.get(company_id, extension)
    return _out(extension, settings)


@router.put("/{extension}", response_model=VoicemailBoxOut)
async def set_voicemail_box(
    company_id: RowId,
    extension: BoxExtension,
    caller: CompanyAdmin,
    request: Request,
    body: VoicemailSettings,
) -> VoicemailBoxOut:
    """Set every setting of the box, as a plan's [[voicemail]] entry does: a field left
    out has its default (`pin` left out or null: no PIN). The greeting and the messages
    stay."""
    settings = await administration(request).voicemail.update(company_id, extension, body)
    return _out(extension, settings)
