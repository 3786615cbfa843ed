"""Call records: one per call, written as it starts and closed however it ends."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nuage.store import repositories
from nuage.store.database import Database

if TYPE_CHECKING:
    from nuage.pbx.calls import Call

log = logging.getLogger(__name__)


class CallRecorder:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, call: Call) -> int:
        async with self._db.transaction() as session:
            record = await repositories.add_call_record(
                session,
                company_id=call.company.id,
                call_id=call.tx.request.call_id,
                direction=call.direction,
                caller=call.caller.number,
                caller_name=call.caller.name,
                callee=call.callee.number,
                started_at=datetime.now(UTC),
                caller_user_id=call.caller.user_id,
                callee_user_id=call.callee.user_id,
            )
            return record.id

    async def finish(self, record_id: int, call: Call, outcome: str, reason: str) -> None:
        try:
            async with self._db.transaction() as session:
                await repositories.finish_call_record(
                    session,
                    call.company.id,
                    record_id,
                    outcome=outcome,
                    ended_at=datetime.now(UTC),
                    answered_at=call.answered_at,
                    reason=reason,
                )
        except Exception:
            log.exception("could not close call record %s", record_id)

    async def refused(
        self,
        company_id: int,
        call_id: str,
        *,
        direction: str,
        caller: str,
        callee: str,
        outcome: str,
        reason: str,
        caller_user_id: int | None = None,
    ) -> None:
        """A call refused before it rang anywhere (policy, unknown number): still recorded."""
        now = datetime.now(UTC)
        async with self._db.transaction() as session:
            record = await repositories.add_call_record(
                session,
                company_id=company_id,
                call_id=call_id,
                direction=direction,
                caller=caller,
                callee=callee,
                started_at=now,
                caller_user_id=caller_user_id,
            )
            await repositories.finish_call_record(
                session, company_id, record.id, outcome=outcome, ended_at=now, reason=reason
            )
