"""Where each user's devices are: the registrar's bindings, in memory and on disk.

Calls read bindings from memory; every change is written to the database (group commit)
before the REGISTER is answered, so bindings survive a restart and are loaded back at
start.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.sip.peer import Peer
from nuage.store import repositories
from nuage.store.database import Database
from nuage.store.models import Registration
from nuage.store.writer import BatchWriter


@dataclass(frozen=True, slots=True)
class Binding:
    contact: str
    # Where the REGISTER came from: requests to the device go back there (NAT, RFC 3581).
    peer: Peer
    expires_at: datetime
    call_id: str
    cseq: int
    user_agent: str | None = None
    instance_id: str | None = None

    @classmethod
    def from_row(cls, row: Registration) -> Binding:
        """A stored binding, read at start: stream connection ids do not survive a restart,
        so such a device is reached by opening a new connection."""
        return cls(
            row.contact,
            Peer(row.transport, row.source_host, row.source_port),
            row.expires_at,
            row.call_id,
            row.cseq,
            row.user_agent,
            row.instance_id,
        )


@dataclass(frozen=True, slots=True)
class BindingChange:
    """Set a binding (``binding``) or remove one (``binding`` None) for ``contact``."""

    contact: str
    binding: Binding | None


class LocationService:
    def __init__(self, db: Database, writer: BatchWriter) -> None:
        self._db = db
        self._writer = writer
        self._bindings: defaultdict[tuple[int, int], dict[str, Binding]] = defaultdict(dict)

    async def load(self, now: datetime) -> None:
        """Bindings as the database has them (at start)."""
        async with self._db.session() as session:
            rows = await repositories.unexpired_registrations(session, now)
        self._bindings.clear()
        for row in rows:
            self._bindings[(row.company_id, row.user_id)][row.contact] = Binding.from_row(row)

    def bindings(self, company_id: int, user_id: int, now: datetime) -> list[Binding]:
        """The user's unexpired bindings, oldest first."""
        current = self._bindings.get((company_id, user_id))
        if not current:
            return []
        return [binding for binding in current.values() if binding.expires_at > now]

    async def change(
        self,
        company_id: int,
        user_id: int,
        changes: list[BindingChange],
        *,
        remove_all: bool = False,
    ) -> None:
        """Apply a REGISTER's changes: durable once this returns."""

        async def persist(session: AsyncSession) -> None:
            if remove_all:
                await repositories.remove_registrations(session, company_id, user_id)
            for change in changes:
                if change.binding is None:
                    await repositories.remove_registration(
                        session, company_id, user_id, change.contact
                    )
                    continue
                binding = change.binding
                peer = binding.peer
                await repositories.save_registration(
                    session,
                    company_id=company_id,
                    user_id=user_id,
                    contact=binding.contact,
                    transport=peer.transport,
                    source_host=peer.host,
                    source_port=peer.port,
                    connection_id=None if peer.connection_id is None else str(peer.connection_id),
                    call_id=binding.call_id,
                    cseq=binding.cseq,
                    expires_at=binding.expires_at,
                    user_agent=binding.user_agent,
                    instance_id=binding.instance_id,
                )

        await self._writer.run(persist)
        current = self._bindings[(company_id, user_id)]
        if remove_all:
            current.clear()
        for change in changes:
            if change.binding is None:
                current.pop(change.contact, None)
            else:
                # Re-inserted at the end: a refreshed binding keeps "oldest first" honest.
                current.pop(change.contact, None)
                current[change.contact] = change.binding
        if not current:
            del self._bindings[(company_id, user_id)]

    async def expire(self, now: datetime) -> None:
        """Housekeeping: forget expired bindings, here and in the database."""
        for key in list(self._bindings):
            current = self._bindings[key]
            for contact in [c for c, b in current.items() if b.expires_at <= now]:
                del current[contact]
            if not current:
                del self._bindings[key]

        async def purge(session: AsyncSession) -> None:
            await repositories.expire_registrations(session, now)

        await self._writer.run(purge)
