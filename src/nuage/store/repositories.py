"""The queries the PBX and the API run.

Every function takes the caller's session, so that several calls can share a transaction
(`async with db.transaction() as session: ...`). Every query is scoped by company_id,
except the few that find out which company a request belongs to: by SIP domain, by
dialled number, by a trunk's source address, by login email.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Executable,
    Table,
    bindparam,
    delete,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from nuage.store.models import (
    CallRecord,
    Company,
    DirectoryRevision,
    Group,
    IvrMenu,
    Number,
    Recording,
    Registration,
    Status,
    Trunk,
    TrunkAddress,
    User,
)

__all__ = [
    "CallRecordEnd",
    "DirectoryRows",
    "NewCallRecord",
    "add_call_records",
    "add_recording",
    "bump_directory_revision",
    "call_records",
    "close_call_records",
    "companies",
    "company",
    "company_by_domain",
    "contacts_of",
    "directory_revision",
    "directory_snapshot",
    "expire_registrations",
    "groups",
    "ivr_menus",
    "number_owner",
    "numbers",
    "recordings_of_call",
    "remove_flow_registrations",
    "remove_registration",
    "remove_registrations",
    "remove_registrations_of",
    "save_registration",
    "save_registrations",
    "set_user_status",
    "statuses",
    "trunks",
    "trunks_by_source_address",
    "unexpired_registrations",
    "user_by_email",
    "user_by_extension",
    "users",
]


# -- the directory a server keeps in memory -----------------------------------------------


async def directory_revision(session: AsyncSession) -> int:
    """The provisioning counter: a running server reloads its directory when it moves."""
    result = await session.execute(
        select(DirectoryRevision.revision).where(DirectoryRevision.id == 1)
    )
    return result.scalar_one()


async def bump_directory_revision(session: AsyncSession) -> int:
    """Tell running servers the directory changed (call inside the changing transaction);
    returns the new revision, the one a server reads once the transaction is committed."""
    result = await session.execute(
        update(DirectoryRevision)
        .where(DirectoryRevision.id == 1)
        .values(revision=DirectoryRevision.revision + 1)
        .returning(DirectoryRevision.revision)
    )
    return int(result.scalar_one())


@dataclass(frozen=True, slots=True)
class DirectoryRows:
    """Every company's directory rows, at one revision."""

    revision: int
    companies: list[Company]
    users: list[User]
    trunks: list[Trunk]
    numbers: list[Number]
    ivrs: list[IvrMenu]
    statuses: list[Status]
    groups: list[Group]


async def directory_snapshot(session: AsyncSession) -> DirectoryRows:
    """Every company's directory rows and the revision they are at, read in one
    transaction. The one cross-company read: the server indexes the rows by company."""
    revision = await directory_revision(session)
    companies = list((await session.execute(select(Company))).scalars())
    users = list((await session.execute(select(User))).scalars())
    trunks = list((await session.execute(select(Trunk).order_by(Trunk.id))).scalars())
    numbers = list((await session.execute(select(Number))).scalars())
    menus = list((await session.execute(select(IvrMenu))).scalars())
    statuses = list(
        (
            await session.execute(select(Status).order_by(Status.company_id, Status.position))
        ).scalars()
    )
    groups = list((await session.execute(select(Group).order_by(Group.extension))).scalars())
    return DirectoryRows(revision, companies, users, trunks, numbers, menus, statuses, groups)


async def _rowcount(session: AsyncSession, statement: Executable) -> int:
    result = cast("CursorResult[Any]", await session.execute(statement))
    return result.rowcount


# -- companies: identification -------------------------------------------------------------


async def companies(session: AsyncSession) -> list[Company]:
    """Every company, by name: for the provider's engineers."""
    result = await session.execute(select(Company).order_by(Company.name, Company.id))
    return list(result.scalars())


async def company(session: AsyncSession, company_id: int) -> Company | None:
    return await session.get(Company, company_id)


async def company_by_domain(session: AsyncSession, domain: str) -> Company | None:
    # Domains are case-insensitive (RFC 3261 section 19.1.4); they are stored lower-case.
    result = await session.execute(select(Company).where(Company.domain == domain.lower()))
    return result.scalar_one_or_none()


async def number_owner(session: AsyncSession, e164: str) -> Number | None:
    """The company number (and its route) an inbound call to e164 reaches."""
    result = await session.execute(select(Number).where(Number.number == e164))
    return result.scalar_one_or_none()


async def trunks_by_source_address(session: AsyncSession, host: str) -> list[Trunk]:
    """Trunks that accept requests from `host`: listed in inbound_addresses, or the trunk's
    own host when that is an address.

    A list, because one carrier commonly serves several companies from the same
    addresses; the dialled number (number_owner) then picks the company.
    """
    by_address = select(TrunkAddress.trunk_id).where(TrunkAddress.address == host)
    result = await session.execute(
        select(Trunk).where(or_(Trunk.host == host, Trunk.id.in_(by_address))).order_by(Trunk.id)
    )
    return list(result.scalars())


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    """The app login: emails are unique across companies."""
    result = await session.execute(select(User).where(User.email == email.lower()))
    return result.scalar_one_or_none()


# -- users, trunks, numbers, IVR menus ---------------------------------------------------------


async def user_by_extension(session: AsyncSession, company_id: int, extension: str) -> User | None:
    result = await session.execute(
        select(User).where(User.company_id == company_id, User.extension == extension)
    )
    return result.scalar_one_or_none()


async def users(session: AsyncSession, company_id: int) -> list[User]:
    result = await session.execute(
        select(User).where(User.company_id == company_id).order_by(User.extension)
    )
    return list(result.scalars())


async def trunks(session: AsyncSession, company_id: int) -> list[Trunk]:
    result = await session.execute(
        select(Trunk).where(Trunk.company_id == company_id).order_by(Trunk.name)
    )
    return list(result.scalars())


async def numbers(session: AsyncSession, company_id: int) -> list[Number]:
    result = await session.execute(
        select(Number).where(Number.company_id == company_id).order_by(Number.number)
    )
    return list(result.scalars())


async def ivr_menus(session: AsyncSession, company_id: int) -> list[IvrMenu]:
    result = await session.execute(
        select(IvrMenu).where(IvrMenu.company_id == company_id).order_by(IvrMenu.extension)
    )
    return list(result.scalars())


async def groups(session: AsyncSession, company_id: int) -> list[Group]:
    result = await session.execute(
        select(Group).where(Group.company_id == company_id).order_by(Group.extension)
    )
    return list(result.scalars())


async def statuses(session: AsyncSession, company_id: int) -> list[Status]:
    """The company's statuses in the order of the app's menu."""
    result = await session.execute(
        select(Status).where(Status.company_id == company_id).order_by(Status.position)
    )
    return list(result.scalars())


async def set_user_status(
    session: AsyncSession, company_id: int, user_id: int, status_id: int | None
) -> bool:
    """Put the user in that status (None: the company's default); False when the company
    has no such user."""
    statement = (
        update(User)
        .where(User.company_id == company_id, User.id == user_id)
        .values(status_id=status_id)
    )
    return await _rowcount(session, statement) == 1


# -- registrations -------------------------------------------------------------------------


async def save_registration(
    session: AsyncSession,
    *,
    company_id: int,
    user_id: int,
    contact: str,
    transport: str,
    source_host: str,
    source_port: int,
    call_id: str,
    cseq: int,
    expires_at: datetime,
    connection_id: str | None = None,
    user_agent: str | None = None,
    instance_id: str | None = None,
) -> None:
    """Add or refresh the binding of contact to the user (one row per user and contact).

    One upsert statement, so that a phone's refresh racing its own retransmission cannot
    fail on the unique constraint.
    """
    await save_registrations(
        session,
        [
            {
                "company_id": company_id,
                "user_id": user_id,
                "contact": contact,
                "transport": transport,
                "source_host": source_host,
                "source_port": source_port,
                "connection_id": connection_id,
                "call_id": call_id,
                "cseq": cseq,
                "expires_at": expires_at,
                "user_agent": user_agent,
                "instance_id": instance_id,
            }
        ],
    )


async def save_registrations(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Add or refresh many bindings in one statement (the registrar's group commit); each
    row has the keyword arguments of save_registration."""
    if rows:
        # On the connection, as Core: the ORM's bulk-insert path costs several times more.
        connection = await session.connection()
        await connection.execute(_upsert_registrations(connection.dialect.name), rows)


@functools.cache
def _upsert_registrations(dialect: str) -> Any:
    # Built once per dialect: building the ON CONFLICT clause proxies every column of the
    # table, which cost more than the write itself at a few hundred registrations a second.
    table = cast(Table, Registration.__table__)
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = dialect_insert(table)
    changing = {
        column.name: statement.excluded[column.name]
        for column in table.columns
        if column.name not in ("id", "company_id", "user_id", "contact")
    }
    return statement.on_conflict_do_update(
        index_elements=[table.c.user_id, table.c.contact], set_=changing
    )


async def remove_registrations_of(
    session: AsyncSession, company_id: int, bindings: list[tuple[int, str]]
) -> None:
    """Remove the (user_id, contact) bindings of one company, in one statement."""
    if bindings:
        await session.execute(
            delete(Registration).where(
                Registration.company_id == company_id,
                tuple_(Registration.user_id, Registration.contact).in_(bindings),
            )
        )


async def remove_flow_registrations(
    session: AsyncSession,
    company_id: int,
    bindings: list[tuple[int, str]],
    *,
    transport: str,
    source_host: str,
    source_port: int,
    connection_id: str,
) -> None:
    """Remove the (user_id, contact) bindings of one company that are still bound to the
    given connection: one the device has since registered again from elsewhere stays."""
    if bindings:
        await session.execute(
            delete(Registration).where(
                Registration.company_id == company_id,
                tuple_(Registration.user_id, Registration.contact).in_(bindings),
                Registration.transport == transport,
                Registration.source_host == source_host,
                Registration.source_port == source_port,
                Registration.connection_id == connection_id,
            )
        )


async def remove_registration(
    session: AsyncSession, company_id: int, user_id: int, contact: str
) -> bool:
    """Remove one binding; False when there was none."""
    count = await _rowcount(
        session,
        delete(Registration).where(
            Registration.company_id == company_id,
            Registration.user_id == user_id,
            Registration.contact == contact,
        ),
    )
    return bool(count)


async def remove_registrations(session: AsyncSession, company_id: int, user_id: int) -> int:
    """Remove every binding of the user (REGISTER with `Contact: *`); returns how many."""
    return await _rowcount(
        session,
        delete(Registration).where(
            Registration.company_id == company_id, Registration.user_id == user_id
        ),
    )


async def contacts_of(
    session: AsyncSession, company_id: int, user_id: int, now: datetime
) -> list[Registration]:
    """The user's unexpired bindings, oldest first."""
    result = await session.execute(
        select(Registration)
        .where(
            Registration.company_id == company_id,
            Registration.user_id == user_id,
            Registration.expires_at > now,
        )
        .order_by(Registration.id)
    )
    return list(result.scalars())


async def unexpired_registrations(session: AsyncSession, now: datetime) -> list[Registration]:
    """Every company's live bindings, for the location service a server loads at start."""
    result = await session.execute(
        select(Registration).where(Registration.expires_at > now).order_by(Registration.id)
    )
    return list(result.scalars())


async def expire_registrations(session: AsyncSession, now: datetime) -> int:
    """Housekeeping across all companies: delete expired bindings; returns how many."""
    return await _rowcount(session, delete(Registration).where(Registration.expires_at <= now))


# -- call records --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewCallRecord:
    """A call record as written when its call starts (whole, for a call refused before
    it rang anywhere)."""

    company_id: int
    call_id: str
    direction: str
    caller: str
    callee: str
    started_at: datetime
    caller_name: str = ""
    caller_user_id: int | None = None
    callee_user_id: int | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    reason: str = ""

    def columns(self) -> dict[str, Any]:
        """The record's columns and their values."""
        return {field: getattr(self, field) for field in self.__slots__}


@dataclass(frozen=True, slots=True)
class CallRecordEnd:
    """How a call ended (and its quality, when measured), for its record."""

    company_id: int
    record_id: int
    outcome: str
    ended_at: datetime
    answered_at: datetime | None = None
    reason: str = ""
    mos_average: float | None = None
    mos_worst: float | None = None

    def columns(self) -> dict[str, Any]:
        """The columns closing the record sets, and their values."""
        return {column: getattr(self, column) for column in _END_COLUMNS}


# What closing a record sets (company_id and record_id name the row).
_END_COLUMNS = ("outcome", "ended_at", "answered_at", "reason", "mos_average", "mos_worst")


async def add_call_records(session: AsyncSession, records: Sequence[NewCallRecord]) -> list[int]:
    """Write call records, as few statements as the backend allows; their ids, in order."""
    if not records:
        return []
    # Core on the session's connection, as for registrations: every call writes here.
    connection = await session.connection()
    rows = [record.columns() for record in records]
    if connection.dialect.name == "postgresql":
        # One INSERT ... RETURNING per thousand rows, ids sorted back into the rows' order.
        result = await connection.execute(_INSERT_CALL_RECORD_SORTED, rows)
        return [int(row_id) for row_id in result.scalars()]
    # SQLite orders no RETURNING of a many-row INSERT. The first row's id is one more
    # than the largest in the table, and from that write to the commit this transaction
    # holds the database's only write lock: the ids after it are free, so the other
    # rows take them, in one executemany.
    first = int((await connection.execute(_INSERT_CALL_RECORD, rows[0])).scalar_one())
    ids = list(range(first, first + len(rows)))
    if len(rows) > 1:
        await connection.execute(
            insert(_CALL_RECORDS),
            [{**row, "id": row_id} for row, row_id in zip(rows[1:], ids[1:], strict=True)],
        )
    return ids


async def close_call_records(session: AsyncSession, ends: Sequence[CallRecordEnd]) -> None:
    """Write how calls ended, in one executemany; a record of another company than the
    one given is left alone."""
    if not ends:
        return
    connection = await session.connection()
    await connection.execute(
        _CLOSE_CALL_RECORD,
        [
            {f"end_{field}": getattr(end, field) for field in CallRecordEnd.__slots__}
            for end in ends
        ],
    )


_CALL_RECORDS = cast(Table, CallRecord.__table__)
_INSERT_CALL_RECORD = insert(_CALL_RECORDS).returning(_CALL_RECORDS.c.id)
_INSERT_CALL_RECORD_SORTED = insert(_CALL_RECORDS).returning(
    _CALL_RECORDS.c.id, sort_by_parameter_order=True
)
_CLOSE_CALL_RECORD = (
    update(_CALL_RECORDS)
    .where(
        _CALL_RECORDS.c.company_id == bindparam("end_company_id"),
        _CALL_RECORDS.c.id == bindparam("end_record_id"),
    )
    .values({column: bindparam(f"end_{column}") for column in _END_COLUMNS})
)


async def call_records(
    session: AsyncSession, company_id: int, limit: int = 100
) -> list[CallRecord]:
    """The company's most recent calls, newest first."""
    result = await session.execute(
        select(CallRecord)
        .where(CallRecord.company_id == company_id)
        .order_by(CallRecord.started_at.desc(), CallRecord.id.desc())
        .limit(limit)
    )
    return list(result.scalars())


# -- recordings ---------------------------------------------------------------------------


async def add_recording(
    session: AsyncSession,
    *,
    company_id: int,
    call_record_id: int,
    owner_user_id: int | None,
    path: str,
    started_at: datetime,
    duration_ms: int,
    stopped_by: str,
) -> int:
    """Register a recording whose file is already durable; returns its id."""
    recording = Recording(
        company_id=company_id,
        call_record_id=call_record_id,
        owner_user_id=owner_user_id,
        path=path,
        started_at=started_at,
        duration_ms=duration_ms,
        stopped_by=stopped_by,
    )
    session.add(recording)
    await session.flush()
    return recording.id


async def recordings_of_call(
    session: AsyncSession, company_id: int, call_record_id: int
) -> list[Recording]:
    result = await session.execute(
        select(Recording)
        .where(Recording.company_id == company_id, Recording.call_record_id == call_record_id)
        .order_by(Recording.started_at, Recording.id)
    )
    return list(result.scalars())
