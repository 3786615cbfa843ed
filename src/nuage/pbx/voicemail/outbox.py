"""The outbox of voicemail mails (table voicemail_notifications): a row is written with
its message (``enqueue``), taken by a sender (``take``), then marked sent, put off to a
later try, or failed. Taking moves the row's next try on by a lease, in one conditional
UPDATE, so that nodes sharing the database never take the same row at once, and a node
that dies mid-send leaves the row to be tried again once the lease is over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nuage.store.database import Database
from nuage.store.models import (
    Company,
    Group,
    User,
    VoicemailBox,
    VoicemailMessage,
    VoicemailNotification,
)

_ERROR_LENGTH = 500  # the column's


@dataclass(frozen=True, slots=True)
class Notification:
    """A taken row, with what its mail tells of."""

    id: int
    recipient: str
    attach_audio: bool
    attempts: int  # this one included
    message: VoicemailMessage
    company: Company
    owner: User | Group


@dataclass(frozen=True, slots=True)
class OutboxState:
    pending: int
    failed: int
    # When the earliest pending row is due; None: nothing pending.
    next_due: datetime | None


@dataclass(frozen=True, slots=True)
class Abandoned:
    id: int
    recipient: str
    last_error: str | None


def enqueue(
    session: AsyncSession, message: VoicemailMessage, recipient: str, *, attach_audio: bool
) -> None:
    """Add the notification of ``message`` (flushed already) to its transaction."""
    session.add(
        VoicemailNotification(
            company_id=message.company_id,
            message_id=message.id,
            recipient=recipient,
            attach_audio=attach_audio,
            created_at=message.created_at,
            attempts=0,
            next_attempt_at=message.created_at,
        )
    )


_pending = VoicemailNotification.next_attempt_at.is_not(None)


class MailOutbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def due(self, now: datetime, limit: int) -> list[int]:
        """The pending rows due by ``now``, the longest waiting first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(VoicemailNotification.id)
                .where(VoicemailNotification.next_attempt_at <= now)
                .order_by(VoicemailNotification.next_attempt_at, VoicemailNotification.id)
                .limit(limit)
            )
            return list(rows)

    async def take(
        self, notification_id: int, now: datetime, lease: timedelta
    ) -> Notification | None:
        """The row, now this sender's for ``lease``; None when it is no longer due (another
        node took it, or its message was deleted)."""
        async with self._db.transaction() as session:
            attempts = await session.scalar(
                update(VoicemailNotification)
                .where(
                    VoicemailNotification.id == notification_id,
                    VoicemailNotification.next_attempt_at <= now,
                )
                .values(
                    attempts=VoicemailNotification.attempts + 1,
                    next_attempt_at=now + lease,
                )
                .returning(VoicemailNotification.attempts)
            )
            if attempts is None:
                return None
            row = (
                await session.execute(
                    select(VoicemailNotification, VoicemailMessage, Company, User, Group)
                    .join(
                        VoicemailMessage,
                        (VoicemailMessage.id == VoicemailNotification.message_id)
                        & (VoicemailMessage.company_id == VoicemailNotification.company_id),
                    )
                    .join(Company, Company.id == VoicemailNotification.company_id)
                    .join(VoicemailBox, VoicemailBox.id == VoicemailMessage.box_id)
                    .outerjoin(User, User.id == VoicemailBox.user_id)
                    .outerjoin(Group, Group.id == VoicemailBox.group_id)
                    .where(VoicemailNotification.id == notification_id)
                )
            ).one()
        notification, message, company, user, group = row
        return Notification(
            notification.id,
            notification.recipient,
            notification.attach_audio,
            attempts,
            message,
            company,
            user or group,
        )

    async def sent(self, notification_id: int, now: datetime) -> None:
        await self._finish(notification_id, next_attempt_at=None, sent_at=now, last_error=None)

    async def retry(self, notification_id: int, at: datetime, error: str) -> None:
        await self._finish(notification_id, next_attempt_at=at, last_error=error[:_ERROR_LENGTH])

    async def failed(self, notification_id: int, now: datetime, error: str) -> None:
        await self._finish(
            notification_id, next_attempt_at=None, failed_at=now, last_error=error[:_ERROR_LENGTH]
        )

    async def give_up(self, created_before: datetime, now: datetime) -> list[Abandoned]:
        """Fail every pending row left before ``created_before``."""
        async with self._db.transaction() as session:
            rows = await session.execute(
                update(VoicemailNotification)
                .where(_pending, VoicemailNotification.created_at < created_before)
                .values(
                    next_attempt_at=None,
                    failed_at=now,
                    last_error=func.coalesce(VoicemailNotification.last_error, "never tried"),
                )
                .returning(
                    VoicemailNotification.id,
                    VoicemailNotification.recipient,
                    VoicemailNotification.last_error,
                )
            )
            return [Abandoned(*row) for row in rows.all()]

    async def state(self) -> OutboxState:
        async with self._db.session() as session:
            pending, next_due = (
                await session.execute(
                    select(func.count(), func.min(VoicemailNotification.next_attempt_at)).where(
                        _pending
                    )
                )
            ).one()
            failed = await session.scalar(
                select(func.count()).where(VoicemailNotification.failed_at.is_not(None))
            )
        return OutboxState(pending, failed or 0, next_due)

    async def _finish(self, notification_id: int, **values: object) -> None:
        """Record how a try ended; a row whose message was deleted meanwhile is gone and
        needs nothing."""
        async with self._db.transaction() as session:
            await session.execute(
                update(VoicemailNotification)
                .where(VoicemailNotification.id == notification_id)
                .values(**values)
            )
