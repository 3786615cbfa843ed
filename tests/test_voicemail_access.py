"""Listening to voicemail from a phone (issue 5), the parts without a call: the count's
prompt, the PIN check, the greeting's row, and who may reach the access code. The call
itself is tested with real phones in e2e/test_voicemail_access.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nuage.media.prompts import PROMPT_NAMES
from nuage.pbx.directory import Directory
from nuage.pbx.provision import apply_plan, password_hash
from nuage.pbx.routing import VOICEMAIL_ACCESS_CODE, Refused, route_from_trunk, route_from_user
from nuage.pbx.voicemail.access import new_messages_prompt, pin_matches
from nuage.pbx.voicemail.store import BoxKey, VoicemailStore
from nuage.store.database import Database
from test_provision import ISSUE_PLAN, write


@pytest.mark.parametrize(
    ("new", "prompt"),
    [
        (0, "voicemail_no_messages"),
        (1, "voicemail_new_1"),
        (9, "voicemail_new_9"),
        (10, "voicemail_new_many"),
        (250, "voicemail_new_many"),
    ],
)
def test_every_count_of_new_messages_has_its_prompt(new: int, prompt: str) -> None:
    assert new_messages_prompt(new) == prompt
    assert prompt in PROMPT_NAMES


def test_a_pin_is_checked_against_its_argon2_hash() -> None:
    pin_hash = password_hash(None, "4321")
    assert pin_hash is not None
    assert pin_matches(pin_hash, "4321")
    assert not pin_matches(pin_hash, "1234")
    assert not pin_matches(pin_hash, "")
    assert not pin_matches("not a hash", "4321")


@pytest.fixture
async def directory(database: Database, tmp_path: Path) -> AsyncIterator[Directory]:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN))
    directory = Directory(database)
    await directory.start()
    try:
        yield directory
    finally:
        await directory.close()


async def test_a_greeting_is_the_boxs_setting_with_or_without_a_row(
    database: Database, directory: Directory, tmp_path: Path
) -> None:
    company = directory.company_by_domain("acme.example")
    assert company is not None
    user = directory.user(company.id, "1001")
    assert user is not None
    store = VoicemailStore(database, tmp_path)
    box = BoxKey.of(user)
    path = store.greeting_path(box)
    assert path == tmp_path / "voicemail" / str(company.id) / "greetings" / f"{user.id}.wav"
    assert (await store.settings(box)).greeting_path is None
    # No box row yet: setting the greeting makes it, with the defaults otherwise.
    await store.set_greeting(box, path)
    settings = await store.settings(box)
    assert settings.greeting_path == f"voicemail/{company.id}/greetings/{user.id}.wav"
    assert settings.enabled and settings.pin_hash is None
    await store.set_greeting(box, path)
    assert (await store.settings(box)).greeting_path == settings.greeting_path


async def test_the_access_code_is_no_route_for_a_carrier_nor_a_transfer(
    directory: Directory,
) -> None:
    """Only a user's own call reaches their box (PbxService.call_from_user); what
    routing makes of the code (a carrier's call, a transfer's target) is refused."""
    company = directory.company_by_domain("acme.example")
    assert company is not None
    assert isinstance(route_from_trunk(directory, company, VOICEMAIL_ACCESS_CODE), Refused)
    assert isinstance(route_from_user(directory, company, VOICEMAIL_ACCESS_CODE, 0), Refused)
