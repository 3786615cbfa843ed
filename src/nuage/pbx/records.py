"""Call records: one per call, written as it starts and closed however it ends.

Writes go through the group-commit writer, off the call set-up path, as rows of two bulk
writes (records opened, records closed): a batch of calls costs a statement or two, not
one per call. The start of a record is committed within one batch, before the call can
end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from nuage.store import repositories
from nuage.store.models import CallRecord
from nuage.store.repositories import CallRecordEnd, NewCallRecord
from nuage.store.writer import BatchWriter

if TYPE_CHECKING:
    from nuage.pbx.calls import Call

log = logging.getLogger(__name__)

RecordId = asyncio.Future[int]


@dataclass(frozen=True, slots=True)
class OpenRecord:
    """A call's record as queued at its start; ``id`` gives its id once written."""

    values: NewCallRecord
    id: RecordId


@dataclass(frozen=True, slots=True)
class CompletedRecord:
    """A call record once its closing is committed: its values as written (not attached
    to any session), the users it concerns, and whether any recording of the call was
    registered (recordings are registered before the record is closed)."""

    record: CallRecord
    users: tuple[int, ...]
    recorded: bool = False


RecordListener = Callable[[CompletedRecord], None]


async def _close(session: AsyncSession, ends: Sequence[CallRecordEnd]) -> list[None]:
    await repositories.close_call_records(session, ends)
    return [None] * len(ends)


class CallRecorder:
    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer
        self._listeners: list[RecordListener] = []

    def add_listener(self, listener: RecordListener) -> None:
        self._listeners.append(listener)

    def _completed(
        self,
        opened: NewCallRecord,
        record_id: int,
        end: CallRecordEnd | None = None,
        *,
        recorded: bool = False,
    ) -> None:
        values = opened.columns()
        if end is not None:
            values |= end.columns()
        users = (opened.caller_user_id, opened.callee_user_id)
        completed = CompletedRecord(
            CallRecord(id=record_id, **values),
            tuple(dict.fromkeys(user for user in users if user is not None)),
            recorded,
        )
        for listener in self._listeners:
            try:
                listener(completed)
            except Exception:
                log.exception("call record listener failed")

    def start(self, call: Call) -> OpenRecord:
        """Queue the record's creation."""
        # The values, not the call: a queued write must not keep an ended call (its media,
        # its messages) alive while the database catches up.
        opened = NewCallRecord(
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
        return OpenRecord(opened, self._writer.run_row(repositories.add_call_records, opened))

    def finish(self, record: OpenRecord, call: Call, outcome: str, reason: str) -> None:
        """Queue the record's closing, once its creation is written; never waits, so an
        ended call is gone at once even when the database is slow."""
        opened = record.values
        average, worst = call.quality.average(), call.quality.worst()
        ended_at = datetime.now(UTC)
        # A call voicemail took was not answered by anyone: a missed call.
        answered_at = call.answered_at if outcome == "answered" else None
        recorded = call.recordings_made > 0

        def created(done: RecordId) -> None:
            if done.cancelled() or done.exception() is not None:
                log.error("call record of %s was not created", opened.call_id)
                return
            record_id = done.result()
            end = CallRecordEnd(
                company_id=opened.company_id,
                record_id=record_id,
                outcome=outcome,
                ended_at=ended_at,
                answered_at=answered_at,
                reason=reason,
                mos_average=None if average is None else round(average.mos, 2),
                mos_worst=None if worst is None else round(worst.mos, 2),
            )
            self._writer.submit_row(
                _close,
                end,
                lambda _: self._completed(opened, record_id, end, recorded=recorded),
            )

        record.id.add_done_callback(created)

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
        when they started ringing): still recorded, whole in one row."""
        now = datetime.now(UTC)
        whole = NewCallRecord(
            company_id=company_id,
            call_id=call_id,
            direction=direction,
            caller=caller,
            callee=callee,
            started_at=started_at or now,
            caller_name=caller_name,
            caller_user_id=caller_user_id,
            callee_user_id=callee_user_id,
            ended_at=now,
            outcome=outcome,
            reason=reason,
        )
        self._writer.submit_row(
            repositories.add_call_records,
            whole,
            lambda record_id: self._completed(whole, record_id),
        )
