"""Statuses (F2, F3): provisioned by the plan file, chosen through StatusService, and
what they make of a call to the user (call_target)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from nuage.pbx.directory import Directory
from nuage.pbx.provision import PlanError, apply_plan, load_plan
from nuage.pbx.statuses import (
    ForwardOutside,
    RefuseCall,
    RingUser,
    StatusService,
    ToVoicemail,
    UnknownStatusError,
    UnknownUserError,
    call_target,
)
from nuage.store import repositories as repo
from nuage.store.database import Database
from nuage.store.models import Company, Status, User
from test_provision import GLOBEX, ISSUE_PLAN, MORE_USERS, bad, snapshot, write

FULL = ISSUE_PLAN + MORE_USERS

STATUSES = """
[[statuses]]
key = "available"
name = "Disponible"
colour = "#2E7D32"

[[statuses]]
key = "meeting"
name = "En réunion"
behaviour = "voicemail"

[[statuses]]
key = "colleague"
name = "Renvoi vers Sophie"
behaviour = "forward"
forward_to = "1003"

[[statuses]]
key = "mobile"
name = "Sur mon portable"
behaviour = "forward"
forward_to = "0475 12 34 56"

[[statuses]]
key = "dnd"
name = "Ne pas déranger"
behaviour = "busy"
pause_acd = true
"""

CUSTOM = FULL + STATUSES


async def statuses_of(db: Database, domain: str = "acme.example") -> list[Status]:
    async with db.session() as session:
        company = await repo.company_by_domain(session, domain)
        assert company is not None
        return await repo.statuses(session, company.id)


def rows(statuses: list[Status]) -> list[tuple[object, ...]]:
    return [
        (s.position, s.key, s.name, s.colour, s.behaviour, s.forward_to, s.pause_acd)
        for s in statuses
    ]


# -- provisioning --------------------------------------------------------------------------

pytestmark = pytest.mark.db


async def test_a_plan_without_statuses_gets_the_defaults_in_its_language(
    database: Database, tmp_path: Path
) -> None:
    report = await apply_plan(database, write(tmp_path, ISSUE_PLAN))
    assert (report.statuses.created, report.statuses.removed) == (5, 0)
    assert "statuses: 5 created, 0 updated, 0 removed" in str(report)
    assert rows(await statuses_of(database)) == [
        (0, "available", "Disponible", "#2e7d32", "ring", None, False),
        (1, "meeting", "En réunion", "#ef6c00", "voicemail", None, False),
        (2, "lunch", "Pause déjeuner", "#f9a825", "voicemail", None, True),
        (3, "dnd", "Ne pas déranger", "#c62828", "busy", None, True),
        (4, "away", "Absent", "#757575", "voicemail", None, True),
    ]
    assert not (await apply_plan(database, write(tmp_path, ISSUE_PLAN))).changed
    # The company's language names them; changing it renames them, keys stay.
    dutch = ISSUE_PLAN.replace('language = "fr"', 'language = "nl"')
    report = await apply_plan(database, write(tmp_path, dutch))
    assert (report.statuses.created, report.statuses.updated) == (0, 5)
    names = [s.name for s in await statuses_of(database)]
    assert names == ["Beschikbaar", "In vergadering", "Lunchpauze", "Niet storen", "Afwezig"]
    english = ISSUE_PLAN.replace('language = "fr"', 'language = "en"')
    await apply_plan(database, write(tmp_path, english))
    names = [s.name for s in await statuses_of(database)]
    assert names == ["Available", "In a meeting", "Lunch", "Do not disturb", "Away"]


async def test_custom_statuses_apply_idempotently(database: Database, tmp_path: Path) -> None:
    report = await apply_plan(database, write(tmp_path, CUSTOM))
    assert report.statuses.created == 5
    assert rows(await statuses_of(database)) == [
        (0, "available", "Disponible", "#2e7d32", "ring", None, False),
        (1, "meeting", "En réunion", None, "voicemail", None, False),
        (2, "colleague", "Renvoi vers Sophie", None, "forward", "1003", False),
        (3, "mobile", "Sur mon portable", None, "forward", "+32475123456", False),
        (4, "dnd", "Ne pas déranger", None, "busy", None, True),
    ]
    async with database.session() as session:
        revision = await repo.directory_revision(session)
    before = await snapshot(database)
    again = await apply_plan(database, write(tmp_path, CUSTOM))
    assert not again.changed
    assert "statuses: 0 created, 0 updated, 0 removed" in str(again)
    assert await snapshot(database) == before
    async with database.session() as session:
        assert await repo.directory_revision(session) == revision


async def test_statuses_change_and_removed_ones_send_users_back_to_the_default(
    database: Database, tmp_path: Path
) -> None:
    await apply_plan(database, write(tmp_path, CUSTOM))
    directory = Directory(database)
    await directory.load()
    company = directory.company_by_domain("acme.example")
    assert company is not None
    jan = directory.user(company.id, "1002")
    assert jan is not None
    service = StatusService(database, directory)
    await service.set(company.id, jan.id, "dnd")
    # "dnd" leaves, "meeting" is renamed and moves last, "lunch" arrives.
    changed = CUSTOM.replace(
        """[[statuses]]
key = "dnd"
name = "Ne pas déranger"
behaviour = "busy"
pause_acd = true
""",
        "",
    ).replace(
        """[[statuses]]
key = "meeting"
name = "En réunion"
behaviour = "voicemail"
""",
        "",
    )
    changed += """
[[statuses]]
key = "lunch"
name = "Lunch"
behaviour = "voicemail"

[[statuses]]
key = "meeting"
name = "En rendez-vous"
behaviour = "voicemail"
"""
    report = await apply_plan(database, write(tmp_path, changed))
    assert (report.statuses.created, report.statuses.updated, report.statuses.removed) == (
        1,
        3,  # colleague and mobile move up, meeting moves down and is renamed
        1,
    )
    assert [(s.position, s.key, s.name) for s in await statuses_of(database)] == [
        (0, "available", "Disponible"),
        (1, "colleague", "Renvoi vers Sophie"),
        (2, "mobile", "Sur mon portable"),
        (3, "lunch", "Lunch"),
        (4, "meeting", "En rendez-vous"),
    ]
    async with database.session() as session:
        user = await session.get(User, jan.id)
        assert user is not None and user.status_id is None
    await directory.load()
    assert service.current(company.id, jan.id).key == "available"


async def test_companies_have_their_own_statuses(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, CUSTOM))
    await apply_plan(database, write(tmp_path, GLOBEX, "globex.toml"))
    acme = [s.key for s in await statuses_of(database)]
    globex = await statuses_of(database, "globex.example")
    assert acme == ["available", "meeting", "colleague", "mobile", "dnd"]
    # Globex's language is the default, French.
    assert [s.name for s in globex][:2] == ["Disponible", "En réunion"]
    directory = Directory(database)
    await directory.load()
    company = directory.company_by_domain("globex.example")
    other = directory.company_by_domain("acme.example")
    assert company is not None and other is not None
    homer = directory.user(company.id, "1001")
    assert homer is not None
    service = StatusService(database, directory)
    # Another company's key is unknown here, its user unknown, its status not found.
    with pytest.raises(UnknownStatusError):
        await service.set(company.id, homer.id, "colleague")
    with pytest.raises(UnknownUserError):
        await service.set(other.id, homer.id, "dnd")
    assert directory.status(company.id, directory.statuses(other.id)[0].id) is None


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (
            bad(CUSTOM, 'forward_to = "1003"', ""),
            'statuses[2].forward_to: required with behaviour = "forward"',
        ),
        (
            bad(CUSTOM, 'forward_to = "1003"', 'forward_to = "1009"'),
            "statuses[2].forward_to: no user with extension '1009'",
        ),
        (
            bad(CUSTOM, '"0475 12 34 56"', '"0475 12"'),
            "statuses[3].forward_to: '0475 12' is not a valid number",
        ),
        (
            bad(CUSTOM, '"0475 12 34 56"', '"+49 30 12345678"'),
            "statuses[3].forward_to: '+49 30 12345678': Destination country DE not allowed",
        ),
        (
            bad(CUSTOM, '"0475 12 34 56"', '"+32 90 12 34 56"'),
            "statuses[3].forward_to: '+32 90 12 34 56': Destination +3290 blocked",
        ),
        (
            bad(CUSTOM, 'behaviour = "voicemail"', 'behaviour = "voicemail"\nforward_to = "1003"'),
            'statuses[1].forward_to: only with behaviour = "forward"',
        ),
        (bad(CUSTOM, 'key = "dnd"', 'key = "meeting"'), "statuses[4].key: duplicate 'meeting'"),
        (
            bad(CUSTOM, 'key = "dnd"', 'key = "Do Not"'),
            "statuses[4].key: 'Do Not' is not a key",
        ),
        (
            bad(CUSTOM, 'colour = "#2E7D32"', 'colour = "green"'),
            "statuses[0].colour: 'green' is not a colour",
        ),
        (
            bad(CUSTOM, 'behaviour = "busy"', 'behaviour = "reject"'),
            "statuses[4].behaviour: Input should be 'ring', 'voicemail', 'forward' or 'busy'",
        ),
        (bad(CUSTOM, "pause_acd = true", "pause_acd = 1"), "statuses[4].pause_acd: Input should"),
        (bad(CUSTOM, 'name = "Disponible"', 'label = "Disponible"'), "statuses[0].label"),
        (
            bad(CUSTOM, 'colour = "#2E7D32"', 'behaviour = "voicemail"'),
            'statuses: no status has behaviour = "ring"',
        ),
    ],
)
def test_every_wrong_status_is_named(tmp_path: Path, plan: str, message: str) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, plan))
    assert message in str(info.value)


def test_forwarding_outside_needs_external_calls(tmp_path: Path) -> None:
    plan = bad(CUSTOM, "max_external_calls = 10", "max_external_calls = 0")
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, plan))
    assert str(info.value) == (
        "statuses[3].forward_to: '0475 12 34 56': policy.max_external_calls = 0 forbids it"
    )
    # One of the company's own numbers is no external call.
    own = bad(plan, '"0475 12 34 56"', '"02 555 01 01"')
    assert load_plan(write(tmp_path, own)).statuses[3].forward_to == "02 555 01 01"  # type: ignore[index]


async def test_a_bad_status_changes_nothing(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, CUSTOM))
    before = await snapshot(database)
    with pytest.raises(PlanError):
        await apply_plan(database, write(tmp_path, bad(CUSTOM, '"1003"', '"1009"')))
    assert await snapshot(database) == before


# -- choosing a status ---------------------------------------------------------------------


async def _acme(
    database: Database, tmp_path: Path, plan: str = CUSTOM
) -> tuple[Directory, StatusService, Company, dict[str, User]]:
    await apply_plan(database, write(tmp_path, plan))
    directory = Directory(database)
    await directory.load()
    company = directory.company_by_domain("acme.example")
    assert company is not None
    users = {u.extension: u for u in directory.users_of(company.id)}
    return directory, StatusService(database, directory), company, users


async def test_set_and_current(database: Database, tmp_path: Path) -> None:
    directory, service, company, users = await _acme(database, tmp_path)
    jan = users["1002"]
    assert [s.key for s in service.statuses(company.id)] == [
        "available",
        "meeting",
        "colleague",
        "mobile",
        "dnd",
    ]
    # Nobody chose anything yet: the first "ring" status.
    assert service.current(company.id, jan.id).key == "available"
    assert jan.status_id is None
    revision = directory.revision

    dnd = await service.set(company.id, jan.id, "dnd")
    assert (dnd.key, dnd.behaviour) == ("dnd", "busy")
    # In effect at once in this process, before any reload...
    assert directory.revision == revision
    assert service.current(company.id, jan.id).key == "dnd"
    assert service.current(company.id, users["1001"].id).key == "available"
    # ... written, and other processes told to reload.
    async with database.session() as session:
        assert (await session.get(User, jan.id)).status_id == dnd.id  # type: ignore[union-attr]
        assert await repo.directory_revision(session) == revision + 1
    elsewhere = Directory(database)
    await elsewhere.load()
    status = elsewhere.user_status(company.id, jan.id)
    assert status is not None and status.id == dnd.id
    await directory.load()
    assert service.current(company.id, jan.id).key == "dnd"

    with pytest.raises(UnknownStatusError, match=r"unknown status 'gone' \(statuses: available,"):
        await service.set(company.id, jan.id, "gone")
    with pytest.raises(UnknownUserError):
        service.current(company.id, 999_999)
    with pytest.raises(UnknownUserError):
        await service.set(company.id + 1, jan.id, "dnd")
    assert service.current(company.id, jan.id).key == "dnd"

    back = await service.set(company.id, jan.id, "available")
    assert service.current(company.id, jan.id) == back


async def test_a_status_removed_before_the_reload_is_unknown(
    database: Database, tmp_path: Path
) -> None:
    _directory, service, company, users = await _acme(database, tmp_path)
    # Another process removes "dnd"; this directory has not reloaded yet.
    await apply_plan(database, write(tmp_path, CUSTOM.split('[[statuses]]\nkey = "dnd"')[0]))
    with pytest.raises(UnknownStatusError):
        await service.set(company.id, users["1002"].id, "dnd")
    async with database.session() as session:
        statuses = list(await session.scalars(select(User.status_id)))
    assert statuses == [None, None, None]


# -- what a call to a user does ------------------------------------------------------------


async def test_call_targets_follow_the_callees_status(database: Database, tmp_path: Path) -> None:
    directory, service, company, users = await _acme(database, tmp_path)
    elodie, jan, sophie = users["1001"], users["1002"], users["1003"]

    assert call_target(directory, company, jan) == RingUser(jan)
    await service.set(company.id, jan.id, "dnd")
    assert call_target(directory, company, jan) == RefuseCall(486, "Do not disturb", "busy", jan)
    await service.set(company.id, jan.id, "meeting")
    assert call_target(directory, company, jan) == ToVoicemail(jan)
    await service.set(company.id, jan.id, "mobile")
    assert call_target(directory, company, jan) == ForwardOutside("+32475123456", jan)

    # To Sophie, whose own status then counts.
    await service.set(company.id, jan.id, "colleague")
    assert call_target(directory, company, jan) == RingUser(sophie)
    await service.set(company.id, sophie.id, "dnd")
    assert call_target(directory, company, jan) == RefuseCall(486, "Do not disturb", "busy", sophie)
    # Sophie forwarding to herself is a circle: her phones ring.
    await service.set(company.id, sophie.id, "colleague")
    assert call_target(directory, company, jan) == RingUser(sophie)
    assert call_target(directory, company, sophie) == RingUser(sophie)
    assert call_target(directory, company, elodie) == RingUser(elodie)
