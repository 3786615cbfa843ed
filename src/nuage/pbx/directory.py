"""The directory (companies, users, trunks, numbers, IVR menus, statuses, groups) kept
in memory.

Every SIP request needs it, so it is read from memory, not the database. `nuage
provision` (another process) bumps a revision counter in the same transaction as its
changes; the server polls that counter and reloads the whole directory when it moves, so
provisioning takes effect within a poll interval, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from nuage.store import repositories
from nuage.store.database import Database
from nuage.store.models import Company, Group, IvrMenu, Number, Status, Trunk, User

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent reading of the directory; replaced whole, never changed."""

    revision: int = -1
    companies: dict[int, Company] = field(default_factory=dict)
    companies_by_domain: dict[str, Company] = field(default_factory=dict)
    users: dict[tuple[int, str], User] = field(default_factory=dict)
    users_by_id: dict[int, User] = field(default_factory=dict)
    # Each company's users by extension.
    users_by_company: dict[int, list[User]] = field(default_factory=dict)
    trunks: dict[int, list[Trunk]] = field(default_factory=dict)
    trunks_by_address: dict[str, list[Trunk]] = field(default_factory=dict)
    numbers: dict[str, Number] = field(default_factory=dict)
    numbers_by_company: dict[int, list[Number]] = field(default_factory=dict)
    ivrs: dict[tuple[int, str], IvrMenu] = field(default_factory=dict)
    # Each company's statuses in menu order, and every status by id.
    statuses: dict[int, list[Status]] = field(default_factory=dict)
    statuses_by_id: dict[int, Status] = field(default_factory=dict)
    groups: dict[tuple[int, str], Group] = field(default_factory=dict)
    groups_by_id: dict[int, Group] = field(default_factory=dict)
    # The groups each user is a member of, by extension.
    groups_of_user: dict[int, list[Group]] = field(default_factory=dict)
    # What other modules compute from this snapshot (Directory.derived), dropped with it.
    derived: dict[object, object] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        revision: int,
        companies: list[Company],
        users: list[User],
        trunks: list[Trunk],
        numbers: list[Number],
        *,
        ivrs: list[IvrMenu] | None = None,
        statuses: list[Status] | None = None,
        groups: list[Group] | None = None,
    ) -> Snapshot:
        trunks_by_company: defaultdict[int, list[Trunk]] = defaultdict(list)
        trunks_by_address: defaultdict[str, list[Trunk]] = defaultdict(list)
        for trunk in trunks:
            trunks_by_company[trunk.company_id].append(trunk)
            # A carrier is recognised by the trunk's own host when it is an address, or by
            # any of its listed inbound addresses (repositories.trunks_by_source_address).
            for address in {trunk.host, *trunk.inbound_addresses}:
                trunks_by_address[address].append(trunk)
        numbers_by_company: defaultdict[int, list[Number]] = defaultdict(list)
        for number in sorted(numbers, key=lambda n: n.number):
            numbers_by_company[number.company_id].append(number)
        users_by_company: defaultdict[int, list[User]] = defaultdict(list)
        for user in sorted(users, key=lambda u: u.extension):
            users_by_company[user.company_id].append(user)
        statuses_by_company: defaultdict[int, list[Status]] = defaultdict(list)
        for status in sorted(statuses or [], key=lambda s: s.position):
            statuses_by_company[status.company_id].append(status)
        groups_of_user: defaultdict[int, list[Group]] = defaultdict(list)
        for group in sorted(groups or [], key=lambda g: g.extension):
            for user_id in group.member_ids:
                groups_of_user[user_id].append(group)
        return cls(
            revision=revision,
            companies={company.id: company for company in companies},
            companies_by_domain={company.domain: company for company in companies},
            users={(user.company_id, user.extension): user for user in users},
            users_by_id={user.id: user for user in users},
            users_by_company=dict(users_by_company),
            trunks=dict(trunks_by_company),
            trunks_by_address=dict(trunks_by_address),
            numbers={number.number: number for number in numbers},
            numbers_by_company=dict(numbers_by_company),
            ivrs={(menu.company_id, menu.extension): menu for menu in ivrs or []},
            statuses=dict(statuses_by_company),
            statuses_by_id={status.id: status for status in statuses or []},
            groups={(group.company_id, group.extension): group for group in groups or []},
            groups_by_id={group.id: group for group in groups or []},
            groups_of_user=dict(groups_of_user),
        )


class Directory:
    """Look-ups by the keys SIP requests carry; every one is company-scoped but the few
    that find the company (domain, source address, dialled number)."""

    def __init__(self, db: Database, *, poll_interval: float = 1.0) -> None:
        self._db = db
        self._poll_interval = poll_interval
        self._snapshot = Snapshot()
        self._task: asyncio.Task[None] | None = None
        # Status changes this process wrote (user id -> status id, and the revision that
        # wrote it), in effect at once; dropped once a snapshot that far is loaded.
        self._user_statuses: dict[int, tuple[int | None, int]] = {}

    @property
    def revision(self) -> int:
        return self._snapshot.revision

    async def load(self) -> None:
        async with self._db.session() as session:
            rows = await repositories.directory_snapshot(session)
        snapshot = Snapshot.build(
            rows.revision,
            rows.companies,
            rows.users,
            rows.trunks,
            rows.numbers,
            ivrs=rows.ivrs,
            statuses=rows.statuses,
            groups=rows.groups,
        )
        self._snapshot = snapshot
        self._user_statuses = {
            user_id: change
            for user_id, change in self._user_statuses.items()
            if change[1] > snapshot.revision
        }

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                async with self._db.session() as session:
                    revision = await repositories.directory_revision(session)
                if revision != self._snapshot.revision:
                    await self.load()
                    log.info("directory reloaded at revision %d", self._snapshot.revision)
            except Exception:
                log.exception("directory refresh failed; keeping revision %d", self.revision)

    def company(self, company_id: int) -> Company | None:
        return self._snapshot.companies.get(company_id)

    def company_by_domain(self, domain: str) -> Company | None:
        return self._snapshot.companies_by_domain.get(domain.lower())

    def user(self, company_id: int, extension: str) -> User | None:
        return self._snapshot.users.get((company_id, extension))

    def users_of(self, company_id: int) -> list[User]:
        """The company's users, by extension."""
        return list(self._snapshot.users_by_company.get(company_id, ()))

    def derived(self, key: object, make: Callable[[], T]) -> T:
        """``make()``, computed once per loaded directory under ``key``: for what is
        costly to derive on every request (the directory search's folded names)."""
        cache = self._snapshot.derived
        if key not in cache:
            cache[key] = make()
        return cast(T, cache[key])

    def user_by_id(self, company_id: int, user_id: int) -> User | None:
        user = self._snapshot.users_by_id.get(user_id)
        return user if user is not None and user.company_id == company_id else None

    def trunks(self, company_id: int) -> list[Trunk]:
        return self._snapshot.trunks.get(company_id, [])

    def trunks_by_source_address(self, host: str) -> list[Trunk]:
        return self._snapshot.trunks_by_address.get(host, [])

    def number_owner(self, e164: str) -> Number | None:
        return self._snapshot.numbers.get(e164)

    def numbers(self, company_id: int) -> list[Number]:
        return self._snapshot.numbers_by_company.get(company_id, [])

    def ivr(self, company_id: int, extension: str) -> IvrMenu | None:
        """The company's IVR menu at that extension (users and menus never share one)."""
        return self._snapshot.ivrs.get((company_id, extension))

    def group(self, company_id: int, extension: str) -> Group | None:
        """The company's group at that extension (users, menus and groups never share
        one)."""
        return self._snapshot.groups.get((company_id, extension))

    def group_by_id(self, company_id: int, group_id: int) -> Group | None:
        group = self._snapshot.groups_by_id.get(group_id)
        return group if group is not None and group.company_id == company_id else None

    def groups_of(self, company_id: int, user_id: int) -> list[Group]:
        """The groups the user is a member of, by extension."""
        return [
            group
            for group in self._snapshot.groups_of_user.get(user_id, ())
            if group.company_id == company_id
        ]

    def statuses(self, company_id: int) -> list[Status]:
        """The company's statuses, in the order of the app's menu."""
        return self._snapshot.statuses.get(company_id, [])

    def status(self, company_id: int, status_id: int) -> Status | None:
        status = self._snapshot.statuses_by_id.get(status_id)
        return status if status is not None and status.company_id == company_id else None

    def status_by_key(self, company_id: int, key: str) -> Status | None:
        return next((s for s in self.statuses(company_id) if s.key == key), None)

    def default_status(self, company_id: int) -> Status | None:
        """The status of users who chose none: the company's first "ring" status."""
        return next((s for s in self.statuses(company_id) if s.behaviour == "ring"), None)

    def user_status(self, company_id: int, user_id: int) -> Status | None:
        """The user's current status: the one they chose (a change this process made
        counts at once), else the default; None for an unknown user or a company
        without statuses."""
        user = self.user_by_id(company_id, user_id)
        if user is None:
            return None
        change = self._user_statuses.get(user_id)
        status_id = change[0] if change is not None else user.status_id
        chosen = self.status(company_id, status_id) if status_id is not None else None
        return chosen or self.default_status(company_id)

    def note_user_status(self, user_id: int, status_id: int | None, revision: int) -> None:
        """A user's status change, committed with directory revision ``revision``: in
        effect in this process from now on, without waiting for the reload."""
        if revision > self._snapshot.revision:
            self._user_statuses[user_id] = (status_id, revision)
