"""A user's call log (F16): their own calls, newest first, filtered to all, missed, or
those with a recording of theirs; and the recordings only their owner may fetch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, or_, select

from nuage.store.database import Database
from nuage.store.models import CallRecord, Recording, User

FILTERS = ("all", "missed", "recordings")


@dataclass(frozen=True, slots=True)
class LogEntry:
    record: CallRecord
    recordings: list[Recording]
    incoming: bool  # the user was called (else the user called)
    missed: bool
    # The colleague the user called, by their name today (records keep only the number).
    callee_name: str = ""

    @classmethod
    def of(
        cls, record: CallRecord, user_id: int, recordings: list[Recording], callee_name: str
    ) -> LogEntry:
        """``record`` as ``user_id`` sees it in their log."""
        incoming = record.callee_user_id == user_id
        return cls(
            record,
            recordings,
            incoming=incoming,
            missed=incoming and record.answered_at is None,
            callee_name=callee_name,
        )


class CallLog:
    def __init__(self, db: Database, data_dir: Path) -> None:
        self._db = db
        self._data_dir = data_dir

    async def entries(
        self,
        company_id: int,
        user_id: int,
        *,
        kind: str = "all",
        limit: int = 50,
        before_id: int | None = None,
        record_id: int | None = None,
    ) -> list[LogEntry]:
        """Newest first; ``before_id`` (the last id of the previous page) pages on;
        ``record_id`` picks one call."""
        mine = or_(CallRecord.caller_user_id == user_id, CallRecord.callee_user_id == user_id)
        missed = and_(CallRecord.callee_user_id == user_id, CallRecord.answered_at.is_(None))
        query = (
            select(CallRecord, User.name)
            .outerjoin(User, User.id == CallRecord.callee_user_id)
            .where(CallRecord.company_id == company_id, CallRecord.ended_at.is_not(None), mine)
        )
        if kind == "missed":
            query = query.where(missed)
        elif kind == "recordings":
            query = query.where(
                CallRecord.id.in_(
                    select(Recording.call_record_id).where(Recording.owner_user_id == user_id)
                )
            )
        if before_id is not None:
            query = query.where(CallRecord.id < before_id)
        if record_id is not None:
            query = query.where(CallRecord.id == record_id)
        query = query.order_by(CallRecord.id.desc()).limit(limit)
        async with self._db.session() as session:
            rows = (await session.execute(query)).all()
            records = [record for record, _ in rows]
            callee_names = {record.id: name or "" for record, name in rows}
            owned = (
                await session.execute(
                    select(Recording)
                    .where(
                        Recording.call_record_id.in_([r.id for r in records]),
                        Recording.owner_user_id == user_id,
                    )
                    .order_by(Recording.started_at, Recording.id)
                )
            ).scalars()
        by_call: dict[int, list[Recording]] = {}
        for recording in owned:
            by_call.setdefault(recording.call_record_id, []).append(recording)
        return [
            LogEntry.of(record, user_id, by_call.get(record.id, []), callee_names[record.id])
            for record in records
        ]

    async def recording_file(self, company_id: int, user_id: int, recording_id: int) -> Path | None:
        """The WAV of a recording the user owns; None for anyone else's (or none)."""
        async with self._db.session() as session:
            recording = await session.get(Recording, recording_id)
        if (
            recording is None
            or recording.company_id != company_id
            or recording.owner_user_id != user_id
        ):
            return None
        path = self._data_dir / recording.path
        return path if path.is_file() else None
