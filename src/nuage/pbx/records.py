"""Call records: one per call, written as it starts and closed however it ends.

Writes go through the group-commit writer, off the call set-up path: the start of a
record is committed within one batch, before the call can end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.store import repositories
from nuage.store.writer import BatchWriter

if TYPE_CHECKING:
    from nuage.pbx.calls import Call

log = logging.getLogger(__name__)

RecordId = asyncio.Future[int]

# Told when a call record is complete (the call ended, or was refused), once committed:
# (company id, record id, the users it concerns).
RecordListener = Callable[[int, int, tuple[int, ...]], None]


class CallRecorder:
    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer
        self._listeners: list[RecordListener] = []

    def add_listener(self, listener: RecordListener) -> None:
        self._listeners.append(listener)

    def _completed(self, company_id: int, record_id: int, users: tuple[int | None, ...]) -> None:
        concerned = tuple(dict.fromkeys(user for user in users if user is not None))
        for listener in self._listeners:
            try:
                listener(company_id, record_id, concerned)
            except Exception:
                log.exception("call record listener failed")

    async def start(self, call: Call) -> RecordId:
        """Queue the record's creation; the returned future gives its id once written."""
        # The values, not the call: a queued write must not keep an ended call (its media,
        # its messages) alive while the database catches up.
        create = partial(
            repositories.add_call_record,
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
        return asyncio.ensure_future(self._writer.run(create))

    def finish(self, record: RecordId, call: Call, outcome: str, reason: str) -> None:
        """Queue the record's closing, once its creation is written; never waits, so an
        ended call is gone at once even when the database is slow."""
        ended_at = datetime.now(UTC)
        # A call voicemail took was not answered by anyone: a missed call.
        answered_at = call.answered_at if outcome == "answered" else None
        company_id = call.company.id
        call_id = call.tx.request.call_id
        average, worst = call.quality.average(), call.quality.worst()

        def created(done: RecordId) -> None:
            if done.cancelled() or done.exception() is not None:
                log.error("call record of %s was not created", call_id)
                return
            record_id = done.result()

            async def close(session: AsyncSession) -> None:
                await repositories.finish_call_record(
                    session,
                    company_id,
                    record_id,
                    outcome=outcome,
                    ended_at=ended_at,
                    answered_at=answered_at,
                    reason=reason,
                    mos_average=None if average is None else round(average.mos, 2),
                    mos_worst=None if worst is None else round(worst.mos, 2),
                )

            self._writer.submit(close, lambda _: self._completed(company_id, record_id, users))

        users = (call.caller.user_id, call.callee.user_id)
        record.add_done_callback(created)

    def refused(
        self,
        company_id: int,
        call_id: str,
        *,
        direction: str,
        caller: str,
        callee: str,
        outcome: str,
        reason: str,
        caller_name: str = "",
        caller_user_id: int | None = None,
        callee_user_id: int | None = None,
        started_at: datetime | None = None,
    ) -> None:
        """A call refused before it rang anywhere (policy, unknown number, the callee's
        status), or a click-to-call the user's devices did not take (``started_at``:
        when they started ringing): still recorded."""
        now = datetime.now(UTC)

        async def record(session: AsyncSession) -> int:
            record_id = await repositories.add_call_record(
                session,
                company_id=company_id,
                call_id=call_id,
                direction=direction,
                caller=caller,
                callee=callee,
                started_at=started_at or now,
                caller_name=caller_name,
                caller_user_id=caller_user_id,
                callee_user_id=callee_user_id,
            )
            await repositories.finish_call_record(
                session, company_id, record_id, outcome=outcome, ended_at=now, reason=reason
            )
            return record_id

        self._writer.submit(
            record,
            lambda record_id: self._completed(
                company_id, record_id, (caller_user_id, callee_user_id)
            ),
        )
