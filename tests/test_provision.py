from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text

from nuage.media.prompts import PROMPT_NAMES
from nuage.pbx.provision import CompanyNotFoundError, PlanError, apply_plan, list_calls, load_plan
from nuage.store import repositories as repo
from nuage.store.database import Database
from nuage.store.models import Base, Company, IvrMenu, User

# The plan of issue 2, exactly as written there.
ISSUE_PLAN = """
[company]
name = "Acme"
domain = "acme.example"      # SIP domain and digest realm
country = "BE"               # default country for dialled numbers
language = "fr"

[[users]]
name = "Élodie Martin"
extension = "1001"
email = "elodie@acme.example"
password = "app-secret"      # app login (stored argon2-hashed)
sip_password = "sip-secret"  # device digest auth (stored as HA1)

[[trunks]]
name = "carrier"
host = "127.0.0.1:5080"
transport = "udp"

[[numbers]]
number = "+3225550100"
route = "1001"

[policy]
allowed_countries = ["BE", "NL", "FR"]
blocked_prefixes = ["+3290"]
max_external_calls = 10
"""

SOPHIE = """
[[users]]
name = "Sophie Dubois"
extension = "1003"
email = "sophie@acme.example"
password = "app-secret-3"
sip_password = "sip-secret-3"
"""

MORE_USERS = (
    """
[[users]]
name = "Jan Peeters"
extension = "1002"
email = "jan@acme.example"
password = "app-secret-2"
sip_password = "sip-secret-2"
role = "admin"

"""
    + SOPHIE
    + """
[[trunks]]
name = "backup"
host = "sip.carrier.example"
transport = "tcp"
username = "acme"
password = "trunk-secret"
register = true
inbound_addresses = ["192.0.2.20", "192.0.2.21"]
caller_id = "02 555 01 00"

[[numbers]]
number = "02 555 01 01"
route = "1002"
"""
)


def write(tmp_path: Path, text: str, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove that something did not change."""
    rows = {}
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            result = await session.execute(select(table).order_by(*table.primary_key.columns))
            rows[table.name] = [tuple(row) for row in result]
    return rows


pytestmark = pytest.mark.db


async def test_issue_plan_applies(database: Database, tmp_path: Path) -> None:
    report = await apply_plan(database, write(tmp_path, ISSUE_PLAN))
    assert report.company_created
    assert (report.users.created, report.trunks.created, report.numbers.created) == (1, 1, 1)
    async with database.session() as session:
        company = await repo.company_by_domain(session, "acme.example")
        assert company is not None
        assert (company.name, company.country, company.language) == ("Acme", "BE", "fr")
        assert company.allowed_countries == ["BE", "FR", "NL"]
        assert company.blocked_prefixes == ["+3290"]
        assert company.max_external_calls == 10
        user = await repo.user_by_extension(session, company.id, "1001")
        assert user is not None
        assert (user.name, user.email, user.role) == (
            "Élodie Martin",
            "elodie@acme.example",
            "user",
        )
        [trunk] = await repo.trunks(session, company.id)
        assert (trunk.name, trunk.host, trunk.port, trunk.transport) == (
            "carrier",
            "127.0.0.1",
            5080,
            "udp",
        )
        assert (trunk.register, trunk.username, trunk.inbound_addresses) == (False, None, [])
        number = await repo.number_owner(session, "+3225550100")
        assert number is not None
        assert (number.company_id, number.route) == (company.id, "1001")


async def test_secrets_are_hashed(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN))
    async with database.session() as session:
        user = (await session.execute(select(User))).scalar_one()
    # HA1 = H(username:realm:password), username the extension, realm the SIP domain.
    assert user.sip_ha1_md5 == hashlib.md5(b"1001:acme.example:sip-secret").hexdigest()
    assert user.sip_ha1_sha256 == hashlib.sha256(b"1001:acme.example:sip-secret").hexdigest()
    assert user.password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(user.password_hash, "app-secret")
    assert "app-secret" not in user.password_hash


async def test_applying_twice_changes_nothing(database: Database, tmp_path: Path) -> None:
    plan = write(tmp_path, ISSUE_PLAN + MORE_USERS)
    first = await apply_plan(database, plan)
    assert first.changed
    before = await snapshot(database)
    second = await apply_plan(database, plan)
    assert not second.changed
    assert str(second).splitlines()[0] == "company Acme (acme.example): unchanged"
    # Unchanged passwords are not re-hashed (a new salt would change the row).
    assert await snapshot(database) == before


async def test_plan_changes_are_applied(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN + MORE_USERS))
    async with database.session() as session:
        before = {u.extension: u for u in await session.scalars(select(User))}
    changed = ISSUE_PLAN.replace("max_external_calls = 10", "max_external_calls = 3").replace(
        'password = "app-secret"', 'password = "new-app-secret"'
    ) + MORE_USERS.replace('sip_password = "sip-secret-2"', 'sip_password = "new-sip-2"').replace(
        'route = "1002"', 'route = "1001"'
    ).replace('"192.0.2.21"', '"192.0.2.22"')
    # Sophie (1003) leaves; the backup trunk's second address changes.
    changed = changed.replace(SOPHIE, "")
    report = await apply_plan(database, write(tmp_path, changed))
    assert report.company_updated
    assert (report.users.created, report.users.updated, report.users.removed) == (0, 2, 1)
    assert (report.trunks.created, report.trunks.updated, report.trunks.removed) == (0, 1, 0)
    assert (report.numbers.created, report.numbers.updated, report.numbers.removed) == (0, 1, 0)
    async with database.session() as session:
        after = {u.extension: u for u in await session.scalars(select(User))}
        company = await repo.company_by_domain(session, "acme.example")
        assert company is not None and company.max_external_calls == 3
        trunks = {t.name: t for t in await repo.trunks(session, company.id)}
        number = await repo.number_owner(session, "+3225550101")
        assert number is not None and number.route == "1001"
    assert sorted(after) == ["1001", "1002"]
    hasher = PasswordHasher()
    assert hasher.verify(after["1001"].password_hash, "new-app-secret")
    assert after["1001"].sip_ha1_md5 == before["1001"].sip_ha1_md5
    assert after["1002"].password_hash == before["1002"].password_hash
    assert after["1002"].sip_ha1_md5 == hashlib.md5(b"1002:acme.example:new-sip-2").hexdigest()
    assert trunks["backup"].inbound_addresses == ["192.0.2.20", "192.0.2.22"]
    assert trunks["backup"].caller_id == "+3225550100"
    assert (trunks["backup"].register, trunks["backup"].password) == (True, "trunk-secret")


async def test_users_may_swap_emails(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN + MORE_USERS))
    swapped = (
        (ISSUE_PLAN + MORE_USERS)
        .replace("elodie@acme.example", "tmp")
        .replace("jan@acme.example", "elodie@acme.example")
        .replace('"tmp"', '"jan@acme.example"')
    )
    report = await apply_plan(database, write(tmp_path, swapped))
    assert report.users.updated == 2
    async with database.session() as session:
        user = await repo.user_by_email(session, "jan@acme.example")
        assert user is not None and user.extension == "1001"


def bad(plan: str, old: str, new: str) -> str:
    assert old in plan
    return plan.replace(old, new, 1)


FULL = ISSUE_PLAN + MORE_USERS


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (
            bad(FULL, 'extension = "1003"', 'extension = "1001"'),
            "users[2].extension: duplicate '1001'",
        ),
        (bad(FULL, '"sophie@acme.example"', '"Elodie@acme.example"'), "users[2].email: duplicate"),
        (
            bad(FULL, '"sophie@acme.example"', '"sophie at acme"'),
            "users[2].email: 'sophie at acme' is not an email address",
        ),
        (
            bad(FULL, 'route = "1002"', 'route = "1009"'),
            "numbers[1].route: no user, group or IVR with extension '1009'",
        ),
        (
            bad(FULL, '"02 555 01 01"', '"02 555"'),
            "numbers[1].number: '02 555' is not a valid number",
        ),
        (
            bad(FULL, '"02 555 01 01"', '"+3225550100"'),
            "numbers[1].number: duplicate '+3225550100'",
        ),
        (
            bad(FULL, 'extension = "1002"', 'extension = "0102"'),
            "users[1].extension: String should match pattern",
        ),
        (
            bad(FULL, 'password = "app-secret-2"', 'password = "short"'),
            "users[1].password: String should have at least 8",
        ),
        (
            bad(FULL, 'role = "admin"', 'role = "root"'),
            "users[1].role: Input should be 'user', 'admin' or 'engineer'",
        ),
        (bad(FULL, 'name = "Jan Peeters"', 'nom = "Jan Peeters"'), "users[1].name: Field required"),
        (bad(FULL, 'name = "backup"', 'name = "carrier"'), "trunks[1].name: duplicate 'carrier'"),
        (
            bad(FULL, '"127.0.0.1:5080"', '"127.0.0.1:99999"'),
            "trunks[0].host: '127.0.0.1:99999': port must be",
        ),
        (
            bad(FULL, 'transport = "tcp"', 'transport = "sctp"'),
            "trunks[1].transport: Input should be 'udp' or 'tcp'",
        ),
        (
            bad(FULL, '"192.0.2.21"', '"192.0.2"'),
            "trunks[1].inbound_addresses: '192.0.2' is not an IP address",
        ),
        (
            bad(FULL, 'username = "acme"\n', ""),
            "trunks[1]: register = true needs username and password",
        ),
        (
            bad(FULL, 'country = "BE"', 'country = "XX"'),
            "company.country: unknown country code 'XX'",
        ),
        (
            bad(FULL, '"acme.example"      #', '"acme example"      #'),
            "company.domain: 'acme example' is not a domain name",
        ),
        (
            bad(FULL, '["+3290"]', '["3290"]'),
            "policy.blocked_prefixes: '3290' is not a number prefix",
        ),
        (
            bad(FULL, '"NL", "FR"]', '"NL", "Narnia"]'),
            "policy.allowed_countries: unknown country code 'Narnia'",
        ),
        (FULL + "\n[queues]\n", "queues: unknown key"),
        ("[company\n", "invalid TOML"),
    ],
)
async def test_bad_plan_changes_nothing(
    database: Database, tmp_path: Path, plan: str, message: str
) -> None:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN))
    before = await snapshot(database)
    with pytest.raises(PlanError) as info:
        await apply_plan(database, write(tmp_path, plan))
    assert message in str(info.value)
    assert await snapshot(database) == before


def test_every_wrong_entry_is_named(tmp_path: Path) -> None:
    plan = bad(
        bad(FULL, 'route = "1002"', 'route = "1009"'), 'extension = "1003"', 'extension = "1002"'
    )
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, plan))
    assert str(info.value).splitlines() == [
        "users[2].extension: duplicate '1002'",
        "numbers[1].route: no user, group or IVR with extension '1009'",
    ]


GLOBEX = """
[company]
name = "Globex"
domain = "globex.example"
country = "FR"

[[users]]
name = "Homer"
extension = "1001"
email = "homer@globex.example"
password = "app-secret"
sip_password = "sip-secret"

[[numbers]]
number = "01 23 45 67 89"
route = "1001"
"""


async def test_companies_are_separate(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN))
    report = await apply_plan(database, write(tmp_path, GLOBEX, "globex.toml"))
    assert report.company_created and report.users.created == 1
    async with database.session() as session:
        companies = {c.domain: c for c in await session.scalars(select(Company))}
        assert companies["globex.example"].allowed_countries == ["FR"]  # default policy
        acme_user = await repo.user_by_extension(session, companies["acme.example"].id, "1001")
        globex_user = await repo.user_by_extension(session, companies["globex.example"].id, "1001")
        assert acme_user is not None and globex_user is not None
        assert acme_user.id != globex_user.id
        # Same SIP password, different realm: different secrets.
        assert acme_user.sip_ha1_md5 != globex_user.sip_ha1_md5
        number = await repo.number_owner(session, "+33123456789")
        assert number is not None and number.company_id == companies["globex.example"].id
    # Re-applying Acme's plan leaves Globex alone.
    assert not (await apply_plan(database, write(tmp_path, ISSUE_PLAN))).changed
    before = await snapshot(database)
    stealing = GLOBEX.replace("homer@globex.example", "elodie@acme.example").replace(
        "01 23 45 67 89", "+3225550100"
    )
    with pytest.raises(PlanError) as info:
        await apply_plan(database, write(tmp_path, stealing, "globex.toml"))
    assert str(info.value).splitlines() == [
        "users[0].email: 'elodie@acme.example' belongs to a user of another company",
        "numbers[0].number: '+3225550100' belongs to another company",
    ]
    assert await snapshot(database) == before


async def test_list_calls(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN))
    await apply_plan(database, write(tmp_path, GLOBEX, "globex.toml"))
    async with database.transaction() as session:
        acme = await repo.company_by_domain(session, "acme.example")
        assert acme is not None
        await repo.add_call_records(
            session,
            [
                repo.NewCallRecord(
                    company_id=acme.id,
                    call_id="c1",
                    direction="inbound",
                    caller="+32475123456",
                    callee="1001",
                    started_at=datetime(2026, 3, 1, tzinfo=UTC),
                )
            ],
        )
    by_domain = await list_calls(database, "acme.example")
    by_name = await list_calls(database, "Acme")
    assert [r.call_id for r in by_domain] == [r.call_id for r in by_name] == ["c1"]
    assert await list_calls(database, "Globex") == []
    with pytest.raises(CompanyNotFoundError, match="no company"):
        await list_calls(database, "Initech")


async def test_removed_user_loses_registrations(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN + MORE_USERS))
    async with database.transaction() as session:
        user = (await session.execute(select(User).where(User.extension == "1003"))).scalar_one()
        await repo.save_registration(
            session,
            company_id=user.company_id,
            user_id=user.id,
            contact="<sip:1003@192.0.2.9>",
            transport="udp",
            source_host="192.0.2.9",
            source_port=5060,
            call_id="r",
            cseq=1,
            expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        )
    without_sophie = (ISSUE_PLAN + MORE_USERS).replace('extension = "1003"', 'extension = "1004"')
    report = await apply_plan(database, write(tmp_path, without_sophie))
    assert (report.users.created, report.users.removed) == (1, 1)
    async with database.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM registrations"))).scalar() == 0


async def test_documented_example_applies(database: Database, tmp_path: Path) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "provisioning.md").read_text(encoding="utf-8")
    example = doc.split("## Complete example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    report = await apply_plan(database, write(tmp_path, example))
    assert (report.users.created, report.trunks.created, report.numbers.created) == (3, 2, 5)
    assert (report.ivrs.created, report.groups.created, report.voicemail.created) == (1, 1, 1)
    assert not (await apply_plan(database, write(tmp_path, example))).changed


async def test_demo_plan_applies(database: Database) -> None:
    plan_file = resources.files("nuage").joinpath("data/demo-plan.toml")
    with resources.as_file(plan_file) as plan_path:
        report = await apply_plan(database, plan_path)
        assert (report.ivrs.created, report.groups.created) == (1, 1)
        assert not (await apply_plan(database, plan_path)).changed
    async with database.session() as session:
        company = await repo.company_by_domain(session, "demo.nuage")
        assert company is not None
        [menu] = await repo.ivr_menus(session, company.id)
        number = await repo.number_owner(session, "+3225550180")
    assert menu.keys == {"1": "1001", "2": "1002", "3": "2000"}
    assert number is not None and number.route == menu.extension


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1:5080", ("127.0.0.1", 5080)),
        ("sip.carrier.example", ("sip.carrier.example", 5060)),
        ("[2001:db8::1]:5070", ("2001:db8::1", 5070)),
        ("[2001:db8::1]", ("2001:db8::1", 5060)),
    ],
)
def test_trunk_host_forms(tmp_path: Path, host: str, expected: tuple[str, int]) -> None:
    plan = load_plan(write(tmp_path, bad(ISSUE_PLAN, '"127.0.0.1:5080"', f'"{host}"')))
    assert plan.trunks[0].address == expected


@pytest.mark.parametrize("host", ["127.0.0.1:", "[2001:db8::1]5060", "[not-v6]:5060", "a b:5060"])
def test_trunk_host_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(PlanError, match=r"trunks\[0\]\.host: "):
        load_plan(write(tmp_path, bad(ISSUE_PLAN, '"127.0.0.1:5080"', f'"{host}"')))


# -- IVR menus -------------------------------------------------------------------------------

IVRS = """
[[numbers]]
number = "+3225550180"
route = "800"

[[ivrs]]
name = "Reception"
extension = "800"
prompt = "ivr_language"
timeout = 5
[ivrs.keys]
"1" = "1001"
"2" = "1002"
"9" = "810"

[[ivrs]]
name = "Support"
extension = "810"
prompt = "voicemail_menu"
language = "nl"
timeout = 2.5
attempts = 2
fallback = "1003"
[ivrs.keys]
"*" = "800"
"#" = "1003"
"""

IVR_PLAN = FULL + IVRS


async def ivr_rows(db: Database) -> dict[str, IvrMenu]:
    async with db.session() as session:
        company = await repo.company_by_domain(session, "acme.example")
        assert company is not None
        return {m.extension: m for m in await repo.ivr_menus(session, company.id)}


async def test_ivr_menus_apply_idempotently(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, FULL))
    async with database.session() as session:
        revision = await repo.directory_revision(session)
    report = await apply_plan(database, write(tmp_path, IVR_PLAN))
    assert (report.ivrs.created, report.ivrs.updated, report.ivrs.removed) == (2, 0, 0)
    assert (report.users.changed, report.numbers.created) == (False, 1)
    assert "ivrs: 2 created, 0 updated, 0 removed" in str(report)
    menus = await ivr_rows(database)
    reception, support = menus["800"], menus["810"]
    assert (reception.name, reception.prompt, reception.language) == (
        "Reception",
        "ivr_language",
        None,
    )
    assert (reception.timeout_seconds, reception.attempts, reception.fallback) == (5.0, 3, None)
    assert reception.keys == {"1": "1001", "2": "1002", "9": "810"}
    assert (support.prompt, support.language, support.timeout_seconds) == (
        "voicemail_menu",
        "nl",
        2.5,
    )
    assert (support.attempts, support.fallback) == (2, "1003")
    assert support.keys == {"*": "800", "#": "1003"}
    async with database.session() as session:
        number = await repo.number_owner(session, "+3225550180")
        assert number is not None and number.route == "800"
        assert await repo.directory_revision(session) == revision + 1
    # Again: nothing changes, not even the revision.
    before = await snapshot(database)
    again = await apply_plan(database, write(tmp_path, IVR_PLAN))
    assert not again.changed
    assert await snapshot(database) == before


async def test_ivr_menu_changes_and_removal(database: Database, tmp_path: Path) -> None:
    await apply_plan(database, write(tmp_path, IVR_PLAN))
    ids = {e: m.id for e, m in (await ivr_rows(database)).items()}
    changed = IVR_PLAN.replace('"2" = "1002"', '"2" = "1003"').replace(
        "attempts = 2", "attempts = 4"
    )
    report = await apply_plan(database, write(tmp_path, changed))
    assert (report.ivrs.created, report.ivrs.updated, report.ivrs.removed) == (0, 2, 0)
    menus = await ivr_rows(database)
    assert {e: m.id for e, m in menus.items()} == ids  # updated in place
    assert menus["800"].keys == {"1": "1001", "2": "1003", "9": "810"}
    assert menus["810"].attempts == 4
    # The support menu leaves the plan (and the key leading to it).
    without_support = changed.split('[[ivrs]]\nname = "Support"')[0].replace('"9" = "810"\n', "")
    report = await apply_plan(database, write(tmp_path, without_support))
    assert (report.ivrs.created, report.ivrs.updated, report.ivrs.removed) == (0, 1, 1)
    assert sorted(await ivr_rows(database)) == ["800"]
    # All of them.
    report = await apply_plan(database, write(tmp_path, FULL))
    assert (report.ivrs.removed, report.numbers.removed) == (1, 1)
    assert await ivr_rows(database) == {}


def test_number_may_route_to_an_ivr(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, IVR_PLAN))
    assert [n.route for n in plan.numbers] == ["1001", "1002", "800"]
    assert [m.extension for m in plan.ivrs] == ["800", "810"]
    assert plan.ivrs[0].language is None and plan.ivrs[0].timeout == 5.0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'extension = "800"',
            'extension = "1002"',
            "ivrs[0].extension: '1002' is a user's extension",
        ),
        ('extension = "810"', 'extension = "800"', "ivrs[1].extension: duplicate '800'"),
        ('extension = "810"', 'extension = "080"', "ivrs[1].extension: String should match"),
        ('"2" = "1002"', '"A" = "1002"', 'ivrs[0].keys."A": not a phone key (0-9, *, #)'),
        ('"2" = "1002"', '"12" = "1002"', 'ivrs[0].keys."12": not a phone key'),
        (
            '"2" = "1002"',
            '"7" = "1009"',
            "ivrs[0].keys.\"7\": no user, group or other IVR with extension '1009'",
        ),
        ('"2" = "1002"', '"7" = 1002', 'ivrs[0].keys."7": Input should be a valid string'),
        ('"9" = "810"', '"9" = "800"', "ivrs[0].keys.\"9\": '800' is this IVR itself"),
        (
            'fallback = "1003"',
            'fallback = "1009"',
            "ivrs[1].fallback: no user, group or other IVR with extension '1009'",
        ),
        ('fallback = "1003"', 'fallback = "810"', "ivrs[1].fallback: '810' is this IVR itself"),
        (
            'prompt = "ivr_language"',
            'prompt = "welcome"',
            "ivrs[0].prompt: no prompt named 'welcome'",
        ),
        ('prompt = "ivr_language"', 'prompt = "ivr_language.wav"', "ivrs[0].prompt: no prompt"),
        ('language = "nl"', 'language = "de"', "ivrs[1].language: Input should be 'fr', 'nl'"),
        ("timeout = 2.5", "timeout = 0.5", "ivrs[1].timeout: Input should be greater than or"),
        ("timeout = 2.5", "timeout = 61", "ivrs[1].timeout: Input should be less than or"),
        ("timeout = 2.5", 'timeout = "2"', "ivrs[1].timeout: Input should be a valid number"),
        ("attempts = 2", "attempts = 0", "ivrs[1].attempts: Input should be greater than or"),
        ("attempts = 2", "attempts = 11", "ivrs[1].attempts: Input should be less than or"),
        ('name = "Support"', 'title = "Support"', "ivrs[1].title: unknown key"),
        ('name = "Support"', 'nom = "Support"', "ivrs[1].name: Field required"),
        (
            'route = "800"',
            'route = "820"',
            "numbers[2].route: no user, group or IVR with extension '820'",
        ),
    ],
)
async def test_bad_ivr_changes_nothing(
    database: Database, tmp_path: Path, old: str, new: str, message: str
) -> None:
    await apply_plan(database, write(tmp_path, IVR_PLAN))
    before = await snapshot(database)
    with pytest.raises(PlanError) as info:
        await apply_plan(database, write(tmp_path, bad(IVR_PLAN, old, new)))
    assert message in str(info.value)
    assert await snapshot(database) == before


def test_ivr_fallbacks_may_not_loop(tmp_path: Path) -> None:
    plan = bad(
        bad(IVR_PLAN, "timeout = 5\n", 'timeout = 5\nfallback = "810"\n'),
        'fallback = "1003"',
        'fallback = "800"',
    )
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, plan))
    assert str(info.value).splitlines() == [
        "ivrs[0].fallback: fallbacks loop (800 -> 810 -> 800)",
        "ivrs[1].fallback: fallbacks loop (810 -> 800 -> 810)",
    ]
    # A key leading back is the caller's choice, and fine: only fallbacks are automatic.
    assert load_plan(
        write(tmp_path, bad(IVR_PLAN, "timeout = 5\n", 'timeout = 5\nfallback = "810"\n'))
    )


def test_every_wrong_ivr_entry_is_named(tmp_path: Path) -> None:
    plan = bad(
        bad(bad(IVR_PLAN, '"2" = "1002"', '"2" = "1009"'), 'fallback = "1003"', 'fallback = "9"'),
        'prompt = "voicemail_menu"',
        'prompt = "nope"',
    )
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, plan))
    assert str(info.value).splitlines() == [
        "ivrs[0].keys.\"2\": no user, group or other IVR with extension '1009'",
        "ivrs[1].prompt: no prompt named 'nope'; prompts are " + ", ".join(PROMPT_NAMES),
        "ivrs[1].fallback: no user, group or other IVR with extension '9'",
    ]
