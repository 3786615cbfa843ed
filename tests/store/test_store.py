from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from nuage.store import repositories as repo
from nuage.store.database import Database, open_database
from nuage.store.models import Base, Company, IvrMenu, Trunk, TrunkAddress, User

pytestmark = pytest.mark.db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def add_company(db: Database, domain: str) -> int:
    async with db.transaction() as session:
        company = Company(
            name=domain.split(".", maxsplit=1)[0].title(),
            domain=domain,
            country="BE",
            language="fr",
            allowed_countries=["BE"],
            blocked_prefixes=[],
            max_external_calls=5,
        )
        session.add(company)
        await session.flush()
        return company.id


async def add_user(db: Database, company_id: int, extension: str, email: str) -> int:
    async with db.transaction() as session:
        user = User(
            company_id=company_id,
            name=f"User {extension}",
            extension=extension,
            email=email,
            password_hash="x",
            sip_ha1_md5="0" * 32,
            sip_ha1_sha256="0" * 64,
        )
        session.add(user)
        await session.flush()
        return user.id


def registration(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "contact": "<sip:1001@192.0.2.5:5062>",
        "transport": "udp",
        "source_host": "192.0.2.5",
        "source_port": 5062,
        "call_id": "reg-1",
        "cseq": 1,
        "expires_at": NOW + timedelta(seconds=3600),
    }
    values.update(overrides)
    return values


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_build_exactly_the_models(database: Database) -> None:
    async with database.engine.connect() as connection:
        assert await connection.run_sync(schema_differences) == []


async def test_sqlite_settings(tmp_path: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'nuage.db'}")
    try:
        async with db.engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await db.close()
    # Opening again finds the schema at head and leaves it alone.
    db = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'nuage.db'}")
    await db.close()


async def test_companies_do_not_see_each_other(database: Database) -> None:
    acme = await add_company(database, "acme.example")
    globex = await add_company(database, "globex.example")
    acme_user = await add_user(database, acme, "1001", "a@acme.example")
    globex_user = await add_user(database, globex, "1001", "a@globex.example")
    async with database.session() as session:
        found = await repo.user_by_extension(session, acme, "1001")
        assert found is not None and found.id == acme_user
        found = await repo.user_by_extension(session, globex, "1001")
        assert found is not None and found.id == globex_user
        assert await repo.user_by_extension(session, acme, "1002") is None
        assert [u.id for u in await repo.users(session, acme)] == [acme_user]
        company = await repo.company_by_domain(session, "ACME.example")
        assert company is not None and company.id == acme
        user = await repo.user_by_email(session, "A@Globex.example")
        assert user is not None and user.id == globex_user


async def test_registrations_are_scoped_refreshed_and_expire(database: Database) -> None:
    acme = await add_company(database, "acme.example")
    globex = await add_company(database, "globex.example")
    alice = await add_user(database, acme, "1001", "a@acme.example")
    bob = await add_user(database, globex, "1001", "b@globex.example")
    async with database.transaction() as session:
        await repo.save_registration(session, company_id=acme, user_id=alice, **registration())
        await repo.save_registration(
            session,
            company_id=acme,
            user_id=alice,
            **registration(
                contact="<sip:1001@198.51.100.7;transport=tcp>",
                transport="tcp",
                connection_id="tcp-7",
                expires_at=NOW + timedelta(seconds=60),
                user_agent="baresip",
                instance_id="<urn:uuid:00000000-0000-0000-0000-000000000001>",
            ),
        )
        await repo.save_registration(session, company_id=globex, user_id=bob, **registration())
    # A refresh of the same contact updates the row instead of adding one.
    async with database.transaction() as session:
        await repo.save_registration(
            session,
            company_id=acme,
            user_id=alice,
            **registration(cseq=2, expires_at=NOW + timedelta(seconds=7200)),
        )
    async with database.session() as session:
        contacts = await repo.contacts_of(session, acme, alice, NOW)
        assert [(c.contact, c.cseq) for c in contacts] == [
            ("<sip:1001@192.0.2.5:5062>", 2),
            ("<sip:1001@198.51.100.7;transport=tcp>", 1),
        ]
        assert contacts[0].expires_at == NOW + timedelta(seconds=7200)
        assert contacts[0].expires_at.tzinfo is not None
        assert contacts[1].connection_id == "tcp-7"
        assert contacts[1].user_agent == "baresip"
        # The other company's user of the same extension is not visible through acme.
        assert await repo.contacts_of(session, acme, bob, NOW) == []
        later = NOW + timedelta(seconds=61)
        assert len(await repo.contacts_of(session, acme, alice, later)) == 1
    async with database.transaction() as session:
        assert await repo.expire_registrations(session, NOW + timedelta(seconds=61)) == 1
    async with database.transaction() as session:
        assert not await repo.remove_registration(
            session, globex, alice, "<sip:1001@192.0.2.5:5062>"
        )
        assert await repo.remove_registration(session, acme, alice, "<sip:1001@192.0.2.5:5062>")
        assert await repo.remove_registrations(session, globex, bob) == 1
    async with database.session() as session:
        assert await repo.contacts_of(session, acme, alice, NOW) == []


async def test_removing_a_user_removes_its_registrations(database: Database) -> None:
    acme = await add_company(database, "acme.example")
    alice = await add_user(database, acme, "1001", "a@acme.example")
    async with database.transaction() as session:
        await repo.save_registration(session, company_id=acme, user_id=alice, **registration())
    async with database.transaction() as session:
        user = await session.get(User, alice)
        await session.delete(user)
    async with database.session() as session:
        count = await session.execute(text("SELECT count(*) FROM registrations"))
        assert count.scalar() == 0


async def test_call_records(database: Database) -> None:
    acme = await add_company(database, "acme.example")
    globex = await add_company(database, "globex.example")
    alice = await add_user(database, acme, "1001", "a@acme.example")
    bob = await add_user(database, acme, "1002", "b@acme.example")
    async with database.transaction() as session:
        # One bulk write; ids come back in the rows' order (on SQLite the ids after the
        # first are given by the write itself).
        first, second, third = await repo.add_call_records(
            session,
            [
                repo.NewCallRecord(
                    company_id=acme,
                    call_id="c1",
                    direction="internal",
                    caller="1001",
                    caller_name="Alice",
                    callee="1002",
                    started_at=NOW,
                    caller_user_id=alice,
                    callee_user_id=bob,
                ),
                repo.NewCallRecord(
                    company_id=acme,
                    call_id="c2",
                    direction="outbound",
                    caller="1001",
                    callee="+32475123456",
                    started_at=NOW + timedelta(minutes=5),
                    caller_user_id=alice,
                ),
                repo.NewCallRecord(
                    company_id=globex,
                    call_id="c3",
                    direction="inbound",
                    caller="+3225550100",
                    callee="1001",
                    started_at=NOW,
                ),
            ],
        )
    async with database.session() as session:
        by_id = {r.id: r.call_id for r in await repo.call_records(session, acme)}
        by_id |= {r.id: r.call_id for r in await repo.call_records(session, globex)}
    assert by_id == {first: "c1", second: "c2", third: "c3"}
    async with database.transaction() as session:
        await repo.close_call_records(
            session,
            [
                repo.CallRecordEnd(
                    acme,
                    first,
                    outcome="answered",
                    answered_at=NOW + timedelta(seconds=3),
                    ended_at=NOW + timedelta(seconds=63),
                ),
                repo.CallRecordEnd(
                    acme,
                    second,
                    outcome="failed",
                    reason="503 Service Unavailable",
                    ended_at=NOW + timedelta(minutes=5, seconds=1),
                ),
                # A record of another company cannot be touched through acme.
                repo.CallRecordEnd(globex, first, outcome="missed", ended_at=NOW),
            ],
        )
    async with database.session() as session:
        records = await repo.call_records(session, acme)
        assert [r.call_id for r in records] == ["c2", "c1"]
        c2, c1 = records
        assert (c1.outcome, c1.caller_name, c1.caller_user_id, c1.callee_user_id) == (
            "answered",
            "Alice",
            alice,
            bob,
        )
        assert c1.answered_at == NOW + timedelta(seconds=3)
        assert c1.ended_at == NOW + timedelta(seconds=63)
        assert (c2.outcome, c2.reason, c2.answered_at) == (
            "failed",
            "503 Service Unavailable",
            None,
        )
        assert [r.call_id for r in await repo.call_records(session, acme, limit=1)] == ["c2"]
        [c3] = await repo.call_records(session, globex)
        assert (c3.call_id, c3.outcome, c3.ended_at) == ("c3", None, None)
    # Removing a user keeps the company's history.
    async with database.transaction() as session:
        await session.delete(await session.get(User, bob))
    async with database.session() as session:
        c1 = (await repo.call_records(session, acme))[1]
        assert (c1.caller_user_id, c1.callee_user_id) == (alice, None)


async def test_trunks_and_numbers(database: Database) -> None:
    acme = await add_company(database, "acme.example")
    globex = await add_company(database, "globex.example")
    async with database.transaction() as session:
        session.add_all(
            [
                Trunk(
                    company_id=acme,
                    name="carrier",
                    host="carrier.example",
                    port=5060,
                    transport="udp",
                    addresses=[
                        TrunkAddress(address="192.0.2.1"),
                        TrunkAddress(address="192.0.2.2"),
                    ],
                ),
                Trunk(
                    company_id=globex,
                    name="carrier",
                    host="192.0.2.2",
                    port=5080,
                    transport="tcp",
                    caller_id="+3225550199",
                ),
            ]
        )
    async with database.session() as session:
        [acme_trunk] = await repo.trunks(session, acme)
        assert acme_trunk.inbound_addresses == ["192.0.2.1", "192.0.2.2"]
        assert [
            t.company_id for t in await repo.trunks_by_source_address(session, "192.0.2.1")
        ] == [acme]
        # One carrier address, two customers: the dialled number must decide.
        shared = await repo.trunks_by_source_address(session, "192.0.2.2")
        assert sorted(t.company_id for t in shared) == sorted([acme, globex])
        assert await repo.trunks_by_source_address(session, "203.0.113.9") == []
        assert await repo.number_owner(session, "+3225550100") is None


async def test_ivr_menus(database: Database) -> None:
    acme = await add_company(database, "acme.example")
    globex = await add_company(database, "globex.example")
    async with database.transaction() as session:
        session.add_all(
            [
                IvrMenu(company_id=acme, name="Reception", extension="800", keys={"1": "1001"}),
                IvrMenu(
                    company_id=acme,
                    name="Support",
                    extension="810",
                    prompt="voicemail_menu",
                    language="nl",
                    timeout_seconds=2.5,
                    attempts=1,
                    keys={"*": "800", "#": "1003"},
                    fallback="1003",
                ),
                IvrMenu(company_id=globex, name="Accueil", extension="800"),
            ]
        )
    async with database.session() as session:
        reception, support = await repo.ivr_menus(session, acme)
        [accueil] = await repo.ivr_menus(session, globex)
    # The defaults, and JSON keys as written.
    assert (reception.prompt, reception.language, reception.fallback) == (
        "ivr_language",
        None,
        None,
    )
    assert (reception.timeout_seconds, reception.attempts) == (5.0, 3)
    assert reception.keys == {"1": "1001"}
    assert (support.timeout_seconds, support.attempts) == (2.5, 1)
    assert support.keys == {"*": "800", "#": "1003"}
    assert accueil.keys == {}
    # One menu per extension in a company.
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            session.add(IvrMenu(company_id=acme, name="Again", extension="800"))
    # A company's menus go with it.
    async with database.transaction() as session:
        await session.delete(await session.get(Company, acme))
    async with database.session() as session:
        count = await session.execute(text("SELECT count(*) FROM ivr_menus"))
        assert count.scalar() == 1
