"""Where each user's devices are: the registrar's bindings, in memory and on disk.

Calls read bindings from memory; every change is written to the database (group commit)
before the REGISTER is answered, so bindings survive a restart and are loaded back at
start.

A device reached only over the connection it registered on (a browser over WebSocket,
RFC 7118) is bound to that connection, RFC 5626's flow: when the connection ends its
bindings are dropped, and after a restart its stored bindings are not loaded (nothing
could reach it; it registers again once it has reconnected).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.listeners import UserListeners
from nuage.sip.peer import CONNECTION_BOUND_TRANSPORTS, Peer
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


@dataclass(frozen=True, slots=True)
class _Pending:
    company_id: int
    user_id: int
    changes: list[BindingChange]
    remove_all: bool


def _row(company_id: int, user_id: int, binding: Binding) -> dict[str, Any]:
    peer = binding.peer
    return {
        "company_id": company_id,
        "user_id": user_id,
        "contact": binding.contact,
        "transport": peer.transport,
        "source_host": peer.host,
        "source_port": peer.port,
        "connection_id": None if peer.connection_id is None else str(peer.connection_id),
        "call_id": binding.call_id,
        "cseq": binding.cseq,
        "expires_at": binding.expires_at,
        "user_agent": binding.user_agent,
        "instance_id": binding.instance_id,
    }


class LocationService:
    def __init__(self, db: Database, writer: BatchWriter) -> None:
        self._db = db
        self._writer = writer
        self._bindings: defaultdict[tuple[int, int], dict[str, Binding]] = defaultdict(dict)
        self._pending: list[_Pending] = []
        self._flush: asyncio.Future[None] | None = None
        # Connections gone since the last sweep of the bindings.
        self._lost_flows: set[Peer] = set()
        # Told when a user's bindings change (presence).
        self.listeners = UserListeners()

    async def load(self, now: datetime) -> None:
        """Bindings as the database has them (at start)."""
        async with self._db.session() as session:
            rows = await repositories.unexpired_registrations(session, now)
        self._bindings.clear()
        for row in rows:
            if row.transport in CONNECTION_BOUND_TRANSPORTS:
                continue  # its connection ended with the process before this one
            self._bindings[(row.company_id, row.user_id)][row.contact] = Binding.from_row(row)

    def bindings(self, company_id: int, user_id: int, now: datetime) -> list[Binding]:
        """The user's unexpired bindings, oldest first."""
        current = self._bindings.get((company_id, user_id))
        if not current:
            return []
        return [binding for binding in current.values() if binding.expires_at > now]

    def forget(self, company_id: int, user_id: int) -> None:
        """Drop a deleted user's bindings (their rows went with the user)."""
        self._bindings.pop((company_id, user_id), None)

    async def change(
        self,
        company_id: int,
        user_id: int,
        changes: list[BindingChange],
        *,
        remove_all: bool = False,
    ) -> None:
        """Apply a REGISTER's changes: durable once this returns.

        Changes from concurrent REGISTERs are written together, as one bulk upsert and one
        bulk delete in one transaction: a statement per binding would cost more than the
        rest of a REGISTER.
        """
        self._pending.append(_Pending(company_id, user_id, changes, remove_all))
        if self._flush is None:
            self._flush = asyncio.ensure_future(self._writer.run(self._write_pending))
        # Shielded: a REGISTER whose task is cancelled must not cancel the others' write.
        await asyncio.shield(self._flush)
        current = self._bindings[(company_id, user_id)]
        if remove_all:
            current.clear()
        for change in changes:
            # Refreshed bindings go to the end: "oldest first" stays true.
            current.pop(change.contact, None)
            if change.binding is not None:
                current[change.contact] = change.binding
        if not current:
            del self._bindings[(company_id, user_id)]
        self.listeners.notify(company_id, user_id)

    async def _write_pending(self, session: AsyncSession) -> None:
        pending, self._pending = self._pending, []
        # Changes queued from now on belong to the next write.
        self._flush = None
        wiped: set[tuple[int, int]] = set()
        final: dict[tuple[int, int], dict[str, Binding | None]] = defaultdict(dict)
        for item in pending:
            key = (item.company_id, item.user_id)
            if item.remove_all:
                wiped.add(key)
                final[key] = {}
            for change in item.changes:
                final[key][change.contact] = change.binding
        for company_id, user_id in wiped:
            await repositories.remove_registrations(session, company_id, user_id)
        removals: defaultdict[int, list[tuple[int, str]]] = defaultdict(list)
        rows: list[dict[str, Any]] = []
        for (company_id, user_id), contacts in final.items():
            for contact, binding in contacts.items():
                if binding is None:
                    removals[company_id].append((user_id, contact))
                else:
                    rows.append(_row(company_id, user_id, binding))
        for company_id, bindings in removals.items():
            await repositories.remove_registrations_of(session, company_id, bindings)
        await repositories.save_registrations(session, rows)

    def flow_lost(self, peer: Peer) -> None:
        """The transport's word that a connection ended: the bindings that only it could
        reach go, at once from memory (no call rings them from now on), then from the
        database. Other connections (TCP) can be opened again: their bindings stay."""
        if not peer.connection_bound:
            return
        if not self._lost_flows:
            # One sweep for every connection lost meanwhile: a network cut drops many.
            asyncio.get_running_loop().call_soon(self._sweep_lost_flows)
        self._lost_flows.add(peer)

    def _sweep_lost_flows(self) -> None:
        lost, self._lost_flows = self._lost_flows, set()
        gone: defaultdict[tuple[int, Peer], list[tuple[int, str]]] = defaultdict(list)
        for key in list(self._bindings):
            current = self._bindings[key]
            dropped = [binding for binding in current.values() if binding.peer in lost]
            for binding in dropped:
                del current[binding.contact]
                gone[(key[0], binding.peer)].append((key[1], binding.contact))
            if not current:
                del self._bindings[key]
            if dropped:
                self.listeners.notify(*key)
        for (company_id, peer), bindings in gone.items():
            self._writer.submit(partial(_remove_flow_rows, company_id, peer, bindings))

    async def expire(self, now: datetime) -> None:
        """Housekeeping: forget expired bindings, here and in the database."""
        for key in list(self._bindings):
            current = self._bindings[key]
            expired = [c for c, b in current.items() if b.expires_at <= now]
            for contact in expired:
                del current[contact]
            if not current:
                del self._bindings[key]
            if expired:
                self.listeners.notify(*key)

        async def purge(session: AsyncSession) -> None:
            await repositories.expire_registrations(session, now)

        await self._writer.run(purge)


async def _remove_flow_rows(
    company_id: int, peer: Peer, bindings: list[tuple[int, str]], session: AsyncSession
) -> None:
    await repositories.remove_flow_registrations(
        session,
        company_id,
        bindings,
        transport=peer.transport,
        source_host=peer.host,
        source_port=peer.port,
        connection_id=str(peer.connection_id),
    )
