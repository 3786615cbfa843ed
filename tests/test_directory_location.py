"""The in-memory directory, the location service and the group-commit writer, on the
real database (SQLite, or PostgreSQL under `make pg-test`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.directory import Directory
from nuage.pbx.location import Binding, BindingChange, LocationService
from nuage.pbx.provision import apply_plan
from nuage.sip.peer import Peer
from nuage.store.database import Database
from nuage.store.models import Company, Registration, User
from nuage.store.writer import BatchWriter
from test_provision import GLOBEX, ISSUE_PLAN, IVR_PLAN

pytestmark = pytest.mark.db


async def test_directory_follows_provisioning(database: Database, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(ISSUE_PLAN)
    await apply_plan(database, plan)
    directory = Directory(database, poll_interval=0.05)
    await directory.start()
    try:
        company = directory.company_by_domain("ACME.example")
        assert company is not None
        assert directory.user(company.id, "1001") is not None
        assert directory.user(company.id, "1002") is None
        assert [t.name for t in directory.trunks_by_source_address("127.0.0.1")] == ["carrier"]
        owner = directory.number_owner("+3225550100")
        assert owner is not None and owner.route == "1001"
        revision = directory.revision
        plan.write_text(
            ISSUE_PLAN
            + """
[[users]]
name = "Nora Claes"
extension = "1002"
email = "nora@acme.example"
password = "app-secret-2"
sip_password = "sip-secret-2"
"""
        )
        await apply_plan(database, plan)
        for _ in range(100):
            if directory.revision > revision:
                break
            await asyncio.sleep(0.02)
        assert directory.user(company.id, "1002") is not None
        # An unchanged plan does not make servers reload.
        settled = directory.revision
        await apply_plan(database, plan)
        await asyncio.sleep(0.2)
        assert directory.revision == settled
    finally:
        await directory.close()


async def test_directory_ivr_menus(database: Database, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(IVR_PLAN)
    await apply_plan(database, plan)
    globex_plan = tmp_path / "globex.toml"
    globex_plan.write_text(GLOBEX)
    await apply_plan(database, globex_plan)
    directory = Directory(database)
    await directory.load()
    acme = directory.company_by_domain("acme.example")
    globex = directory.company_by_domain("globex.example")
    assert acme is not None and globex is not None
    # Read after the session is gone: every attribute, the JSON keys too, was loaded.
    menu = directory.ivr(acme.id, "800")
    assert menu is not None
    assert (menu.company_id, menu.name, menu.prompt, menu.language) == (
        acme.id,
        "Reception",
        "ivr_language",
        None,
    )
    assert (menu.timeout_seconds, menu.attempts, menu.fallback) == (5.0, 3, None)
    assert menu.keys == {"1": "1001", "2": "1002", "9": "810"}
    sub = directory.ivr(acme.id, "810")
    assert sub is not None and (sub.language, sub.fallback) == ("nl", "1003")
    owner = directory.number_owner("+3225550180")
    assert owner is not None and directory.ivr(owner.company_id, owner.route) is menu
    # Another company's extension, and a user's, are not menus.
    assert directory.ivr(globex.id, "800") is None
    assert directory.ivr(acme.id, "1001") is None
    assert directory.user(acme.id, "800") is None
    # A plan without the menus removes them from the next snapshot.
    plan.write_text(ISSUE_PLAN)
    await apply_plan(database, plan)
    await directory.load()
    assert directory.ivr(acme.id, "800") is None


async def _acme_user_1001(database: Database, tmp_path: Path) -> tuple[Company, User]:
    """The issue's plan applied; its company and user 1001, as the directory reads them."""
    plan = tmp_path / "plan.toml"
    plan.write_text(ISSUE_PLAN)
    await apply_plan(database, plan)
    directory = Directory(database)
    await directory.load()
    company = directory.company_by_domain("acme.example")
    assert company is not None
    user = directory.user(company.id, "1001")
    assert user is not None
    return company, user


async def test_location_persists_and_reloads(database: Database, tmp_path: Path) -> None:
    company, user = await _acme_user_1001(database, tmp_path)
    writer = BatchWriter(database)
    writer.start()
    try:
        now = datetime.now(UTC)
        location = LocationService(database, writer)
        desk = Binding(
            "sip:1001@10.0.0.5:5060",
            Peer("tcp", "10.0.0.5", 40000, 7),
            now + timedelta(hours=1),
            "call-1",
            1,
        )
        old = Binding(
            "sip:1001@10.0.0.6:5060",
            Peer("udp", "10.0.0.6", 5060),
            now + timedelta(seconds=5),
            "call-2",
            1,
        )
        await location.change(
            company.id,
            user.id,
            [BindingChange(desk.contact, desk), BindingChange(old.contact, old)],
        )
        assert location.bindings(company.id, user.id, now) == [desk, old]
        # Durable as soon as change() returns: a new service (a restarted server) sees it,
        # without the stream connection id, which a restart invalidates.
        restarted = LocationService(database, writer)
        await restarted.load(now)
        reloaded = restarted.bindings(company.id, user.id, now)
        assert [b.contact for b in reloaded] == [desk.contact, old.contact]
        assert reloaded[0].peer == Peer("tcp", "10.0.0.5", 40000)
        later = now + timedelta(seconds=10)
        assert [b.contact for b in location.bindings(company.id, user.id, later)] == [desk.contact]
        await location.expire(later)
        async with database.session() as session:
            rows = (await session.execute(select(Registration.contact))).scalars().all()
        assert rows == [desk.contact]
        await location.change(company.id, user.id, [], remove_all=True)
        assert location.bindings(company.id, user.id, now) == []
    finally:
        await writer.close()


async def test_writer_batches_and_isolates_failures(database: Database) -> None:
    writer = BatchWriter(database)
    writer.start()
    transactions: list[int] = []

    def numbered(n: int):  # type: ignore[no-untyped-def]
        async def op(session: AsyncSession) -> int:
            transactions.append(id(session))
            return n

        return op

    async def broken(session: AsyncSession) -> int:
        raise ValueError("bad write")

    try:
        results = await asyncio.gather(
            *(writer.run(numbered(n)) for n in range(50)),
            writer.run(broken),
            return_exceptions=True,
        )
        assert results[:50] == list(range(50))
        assert isinstance(results[50], RuntimeError)
        # Far fewer transactions than writes: they were grouped (then replayed alone once
        # the broken one failed its batch).
        assert len(set(transactions)) < 50
    finally:
        await writer.close()


async def test_concurrent_registers_are_written_together_in_order(
    database: Database, tmp_path: Path
) -> None:
    company, user = await _acme_user_1001(database, tmp_path)
    writer = BatchWriter(database)
    writer.start()
    try:
        now = datetime.now(UTC)
        location = LocationService(database, writer)

        def binding(port: int, cseq: int) -> Binding:
            return Binding(
                f"sip:1001@10.0.0.9:{port}",
                Peer("udp", "10.0.0.9", port),
                now + timedelta(hours=1),
                "c",
                cseq,
            )

        # 30 devices register at once, then one of them un-registers right behind its
        # own REGISTER: the final state must be the last word for each contact.
        first = binding(6000, 1)
        await asyncio.gather(
            *(
                location.change(company.id, user.id, [BindingChange(b.contact, b)])
                for b in [first, *(binding(6001 + n, 1) for n in range(29))]
            ),
            location.change(company.id, user.id, [BindingChange(first.contact, None)]),
        )
        live = location.bindings(company.id, user.id, now)
        assert len(live) == 29 and first.contact not in {b.contact for b in live}
        restarted = LocationService(database, writer)
        await restarted.load(now)
        stored = {b.contact for b in restarted.bindings(company.id, user.id, now)}
        assert stored == {b.contact for b in live}
    finally:
        await writer.close()


async def test_writer_bulk_rows_share_a_statement_and_fail_alone(database: Database) -> None:
    writer = BatchWriter(database)
    writer.start()
    statements: list[int] = []

    async def doubled(session: AsyncSession, rows: list[int]) -> list[int]:
        statements.append(len(rows))
        if -1 in rows:
            raise ValueError("bad row")
        return [2 * row for row in rows]

    committed: list[int] = []
    try:
        futures = [writer.run_row(doubled, n) for n in range(100)]
        bad = writer.run_row(doubled, -1)
        writer.submit_row(doubled, 7, committed.append)
        results = await asyncio.gather(*futures, bad, return_exceptions=True)
        await writer.close()
        assert results[:100] == [2 * n for n in range(100)]
        assert isinstance(results[100], RuntimeError)
        assert committed == [14]
        # The first batch wrote its rows in one statement, failed on the bad row, and was
        # replayed row by row: each good row still written once, the bad one alone failed.
        assert statements[0] == 102
        assert max(statements[1:]) == 1
    finally:
        await writer.close()
