"""Groups and voicemail boxes in the plan file (issue 5): applied idempotently, every
wrong entry named, and routed: a group's extension, *97 and an extension, from users and
from the carrier."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from nuage.pbx.directory import Directory
from nuage.pbx.provision import PlanError, apply_plan, load_plan
from nuage.pbx.routing import (
    Refused,
    ToGroup,
    ToMailbox,
    ToUser,
    route_from_trunk,
    route_from_user,
)
from nuage.pbx.voicemail.store import BoxKey, VoicemailStore
from nuage.store import repositories as repo
from nuage.store.database import Database
from nuage.store.models import Group, VoicemailBox
from test_provision import FULL, bad, snapshot, write

pytestmark = pytest.mark.db

GROUPS = """
[[numbers]]
number = "+3225550190"
route = "2000"

[[numbers]]
number = "+3225550199"
route = "*972000"

[[groups]]
name = "Support"
extension = "2000"
members = ["1002", "1003"]

[[groups]]
name = "Sales"
extension = "2100"

[[voicemail]]
extension = "2000"
email = "support@acme.example"
pin = "4321"

[[voicemail]]
extension = "1003"
enabled = false
max_seconds = 60
"""

PLAN = FULL + GROUPS


async def groups(db: Database) -> dict[str, Group]:
    async with db.session() as session:
        company = await repo.company_by_domain(session, "acme.example")
        assert company is not None
        return {g.extension: g for g in await repo.groups(session, company.id)}


async def members(db: Database, extension: str) -> list[str]:
    group = (await groups(db))[extension]
    async with db.session() as session:
        company = await repo.company_by_domain(session, "acme.example")
        assert company is not None
        by_id = {u.id: u.extension for u in await repo.users(session, company.id)}
    return sorted(by_id[user_id] for user_id in group.member_ids)


async def boxes(db: Database) -> list[VoicemailBox]:
    async with db.session() as session:
        return list(await session.scalars(select(VoicemailBox).order_by(VoicemailBox.id)))


async def test_groups_and_boxes_apply_idempotently(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, FULL))
    report = await apply_plan(database, write(tmp_path, PLAN))
    assert (report.groups.created, report.voicemail.created, report.numbers.created) == (2, 2, 2)
    assert "groups: 2 created, 0 updated, 0 removed" in str(report)
    assert await members(database, "2000") == ["1002", "1003"]
    assert await members(database, "2100") == []
    sophies_box, support_box = await boxes(database)
    assert support_box.group_id == (await groups(database))["2000"].id
    assert support_box.user_id is None and support_box.email == "support@acme.example"
    assert support_box.pin_hash is not None
    assert PasswordHasher().verify(support_box.pin_hash, "4321")
    assert (sophies_box.enabled, sophies_box.max_seconds) == (False, 60)
    # Again: nothing changes, not even the PIN's (salted) hash.
    before = await snapshot(database)
    again = await apply_plan(database, write(tmp_path, PLAN))
    assert not again.changed
    assert await snapshot(database) == before


async def test_group_changes_and_removal(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, PLAN))
    ids = {e: g.id for e, g in (await groups(database)).items()}
    changed = PLAN.replace('members = ["1002", "1003"]', 'members = ["1003", "1001"]').replace(
        'name = "Sales"\nextension = "2100"', 'name = "Sales team"\nextension = "2100"'
    )
    report = await apply_plan(database, write(tmp_path, changed))
    assert (report.groups.created, report.groups.updated, report.groups.removed) == (0, 2, 0)
    assert {e: g.id for e, g in (await groups(database)).items()} == ids
    assert await members(database, "2000") == ["1001", "1003"]
    assert (await groups(database))["2100"].name == "Sales team"
    # Sophie leaves the company: she leaves the group with her.
    without_sophie = changed.replace('members = ["1003", "1001"]', 'members = ["1001"]')
    without_sophie = without_sophie.replace(
        '[[voicemail]]\nextension = "1003"\nenabled = false\nmax_seconds = 60\n', ""
    )
    sophie = without_sophie.index('name = "Sophie Dubois"')
    start = without_sophie.rindex("[[users]]", 0, sophie)
    end = without_sophie.index("[[trunks]]", sophie)
    await apply_plan(database, write(tmp_path, without_sophie[:start] + without_sophie[end:]))
    assert await members(database, "2000") == ["1001"]
    # The groups leave the plan: their boxes (and messages) go with them.
    report = await apply_plan(database, write(tmp_path, FULL))
    assert (report.groups.removed, report.numbers.removed) == (2, 2)
    assert await groups(database) == {}
    assert await boxes(database) == []  # Sophie's went with her


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('extension = "2100"', 'extension = "1002"', "groups[1].extension: '1002' is a user's"),
        ('extension = "2100"', 'extension = "2000"', "groups[1].extension: duplicate '2000'"),
        (
            '["1002", "1003"]',
            '["1002", "1009"]',
            "groups[0].members[1]: no user with extension '1009'",
        ),
        ('["1002", "1003"]', '["1002", "1002"]', "groups[0].members[1]: duplicate '1002'"),
        (
            'route = "*972000"',
            'route = "*972200"',
            "numbers[3].route: no user or group with extension '2200'",
        ),
        ('route = "*972000"', 'route = "*97"', "numbers[3].route: String should match pattern"),
        (
            'extension = "2000"\nemail',
            'extension = "2200"\nemail',
            "voicemail[0].extension: no user or group with extension '2200'",
        ),
    ],
)
async def test_bad_group_changes_nothing(
    database: Database, tmp_path: Path, old: str, new: str, message: str
) -> None:
    await apply_plan(database, write(tmp_path, PLAN))
    before = await snapshot(database)
    with pytest.raises(PlanError) as info:
        await apply_plan(database, write(tmp_path, bad(PLAN, old, new)))
    assert message in str(info.value)
    assert await snapshot(database) == before


def test_an_ivr_key_may_lead_to_a_group(tmp_path: Path) -> None:
    menu = '\n[[ivrs]]\nname = "Reception"\nextension = "800"\n[ivrs.keys]\n"1" = "2000"\n'
    plan = load_plan(write(tmp_path, PLAN + menu))
    assert plan.ivrs[0].keys == {"1": "2000"}


async def test_routes_to_groups_and_boxes(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, PLAN))
    directory = Directory(database)
    await directory.load()
    acme = directory.company_by_domain("acme.example")
    assert acme is not None
    support = directory.group(acme.id, "2000")
    jan = directory.user(acme.id, "1002")
    assert support is not None and jan is not None
    assert [g.extension for g in directory.groups_of(acme.id, jan.id)] == ["2000"]
    assert route_from_user(directory, acme, "2000", 0) == ToGroup(support)
    assert route_from_user(directory, acme, "*972000", 0) == ToMailbox(support)
    assert route_from_user(directory, acme, "*971002", 0) == ToMailbox(jan)
    assert route_from_user(directory, acme, "*979999", 0) == Refused(404, "No voicemail box 9999")
    assert route_from_trunk(directory, acme, "+3225550190") == ToGroup(support)
    assert route_from_trunk(directory, acme, "025550199") == ToMailbox(support)
    assert route_from_trunk(directory, acme, "+3225550101") == ToUser(jan)


async def test_files_of_deleted_boxes_are_removed_once_old(
    database: Database, tmp_path: Path
) -> None:
    """Support leaves the plan: the database deletes its box and messages; the next sweep
    deletes their files, but not a file written a moment ago (a deposit writes its file
    before its row), nor any file a row still refers to."""
    await apply_plan(database, write(tmp_path, PLAN))
    support = (await groups(database))["2000"]
    data = tmp_path / "data"
    store = VoicemailStore(database, data)
    kept, gone = store.new_message_path(support.company_id), store.greeting_path(BoxKey.of(support))
    async with database.session() as session:
        jan = await repo.user_by_extension(session, support.company_id, "1002")
    assert jan is not None
    jans = store.new_message_path(support.company_id).with_name("jan.wav")
    for path in (kept, gone, jans):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")
    await store.add_message(
        BoxKey.of(support), caller="1001", caller_name="", path=kept, duration_ms=2000
    )
    await store.add_message(
        BoxKey.of(jan), caller="1001", caller_name="", path=jans, duration_ms=1000
    )
    await store.set_greeting(BoxKey.of(support), gone)
    fresh = kept.with_name("being-recorded.wav")
    fresh.write_bytes(b"RIFF")
    assert await store.remove_orphans() == 0  # everything referenced or young
    await apply_plan(database, write(tmp_path, FULL))  # Support and its box go
    assert await store.remove_orphans() == 0  # its files are still young
    assert await store.remove_orphans(older_than=timedelta(0)) == 3
    assert not kept.exists() and not gone.exists() and not fresh.exists()
    assert jans.exists()  # Jan's message is still his
