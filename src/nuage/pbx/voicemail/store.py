"""Voicemail boxes and messages in the database; the messages' audio in the data
directory (``voicemail/<company id>/<date>-<random>.wav``), always written and fsynced
before its row, and removed only after its row.

A box is a user's own or a group's (BoxKey). An owner without a box row has a box with
the defaults of the model; the row is made with the first message or setting. When mail
is on, a message whose box says ``send_email`` gets its notification row (outbox.py) in
the transaction that writes it: to the box's address, else a user's own (a group's box
without an address mails nobody).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nuage.pbx.voicemail import outbox
from nuage.store.database import Database
from nuage.store.models import Group, User, VoicemailBox, VoicemailMessage

# The box a user has before any row says otherwise.
DEFAULT_MAX_SECONDS = 180
# A file younger than this may be a message or greeting whose row is not written yet.
ORPHAN_GRACE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class BoxKey:
    """Which box: a user's own (``user_id``) or a group's (``group_id``)."""

    company_id: int
    user_id: int | None = None
    group_id: int | None = None

    @classmethod
    def of(cls, owner: User | Group) -> BoxKey:
        if isinstance(owner, Group):
            return cls(owner.company_id, group_id=owner.id)
        return cls(owner.company_id, user_id=owner.id)

    @property
    def selects(self) -> ColumnElement[bool]:
        """The condition on VoicemailBox that finds this box."""
        owner = (
            VoicemailBox.user_id == self.user_id
            if self.user_id is not None
            else VoicemailBox.group_id == self.group_id
        )
        return (VoicemailBox.company_id == self.company_id) & owner


@dataclass(frozen=True, slots=True)
class BoxSettings:
    enabled: bool
    max_seconds: int
    greeting_path: str | None
    pin_hash: str | None
    send_email: bool
    email: str | None  # None: the owner's own address
    attach_audio: bool

    @classmethod
    def of(cls, box: VoicemailBox | None) -> BoxSettings:
        if box is None:
            return cls(True, DEFAULT_MAX_SECONDS, None, None, True, None, True)
        return cls(
            box.enabled,
            box.max_seconds,
            box.greeting_path,
            box.pin_hash,
            box.send_email,
            box.email,
            box.attach_audio,
        )


@dataclass(frozen=True, slots=True)
class MessageCounts:
    new: int
    old: int


class VoicemailStore:
    def __init__(self, db: Database, data_dir: Path, *, mail: bool = False) -> None:
        """``mail``: an SMTP server is configured, new messages are to be mailed."""
        self._db = db
        self.data_dir = data_dir
        self._mail = mail

    def new_message_path(self, company_id: int) -> Path:
        """Where a new message's file goes."""
        now = datetime.now(UTC)
        name = f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex}.wav"
        return self.data_dir / "voicemail" / str(company_id) / name

    def greeting_path(self, box: BoxKey) -> Path:
        """Where the box's own greeting is kept."""
        name = f"{box.user_id}.wav" if box.user_id is not None else f"group-{box.group_id}.wav"
        return self.data_dir / "voicemail" / str(box.company_id) / "greetings" / name

    async def set_greeting(self, box: BoxKey, path: Path) -> None:
        """Make ``path`` (durable already) the box's greeting."""
        async with self._db.transaction() as session:
            row = await _box(session, box) or await _new_box(session, box)
            row.greeting_path = str(path.relative_to(self.data_dir))

    async def replace_greeting(self, box: BoxKey, partial: Path) -> None:
        """Make ``partial`` (a complete WAV, fsynced, in the greetings directory) the
        box's greeting: renamed over the old one durably, then the box's row points to
        it. An interrupted replacement leaves the old greeting whole."""
        final = self.greeting_path(box)
        await asyncio.to_thread(_replace_durably, partial, final)
        await self.set_greeting(box, final)

    async def clear_greeting(self, box: BoxKey) -> bool:
        """Back to the default greeting: the row first, then the file. False when the
        box had no greeting of its own."""
        async with self._db.transaction() as session:
            row = await _box(session, box)
            if row is None or row.greeting_path is None:
                return False
            path = self.data_dir / row.greeting_path
            row.greeting_path = None
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)
        return True

    async def settings(self, box: BoxKey) -> BoxSettings:
        async with self._db.session() as session:
            return BoxSettings.of(await _box(session, box))

    async def add_message(
        self,
        box: BoxKey,
        *,
        caller: str,
        caller_name: str,
        path: Path,
        duration_ms: int,
    ) -> VoicemailMessage:
        """Register a message whose file is durable already."""
        async with self._db.transaction() as session:
            row = await _box(session, box) or await _new_box(session, box)
            message = VoicemailMessage(
                company_id=box.company_id,
                box_id=row.id,
                caller=caller[:64],
                caller_name=caller_name[:200],
                path=str(path.relative_to(self.data_dir)),
                created_at=datetime.now(UTC),
                duration_ms=duration_ms,
            )
            session.add(message)
            if self._mail and row.send_email:
                await session.flush()
                recipient = row.email
                if recipient is None and box.user_id is not None:
                    recipient = await session.scalar(
                        select(User.email).where(
                            User.company_id == box.company_id, User.id == box.user_id
                        )
                    )
                if recipient is not None:
                    outbox.enqueue(session, message, recipient, attach_audio=row.attach_audio)
        return message

    async def messages(self, box: BoxKey) -> list[VoicemailMessage]:
        """The box's messages, new ones first, each lot newest first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                _of_box(box).order_by(
                    VoicemailMessage.heard_at.is_not(None),
                    VoicemailMessage.created_at.desc(),
                    VoicemailMessage.id.desc(),
                )
            )
            return list(rows)

    async def counts(self, box: BoxKey) -> MessageCounts:
        async with self._db.session() as session:
            rows = await session.execute(
                select(VoicemailMessage.heard_at.is_(None), func.count())
                .join(VoicemailBox, VoicemailBox.id == VoicemailMessage.box_id)
                .where(box.selects)
                .group_by(VoicemailMessage.heard_at.is_(None))
            )
            by_state = {bool(new): count for new, count in rows.all()}
        return MessageCounts(by_state.get(True, 0), by_state.get(False, 0))

    async def message(self, box: BoxKey, message_id: int) -> VoicemailMessage | None:
        """One of the box's messages; None for any other box's."""
        async with self._db.session() as session:
            found: VoicemailMessage | None = await session.scalar(
                _of_box(box).where(VoicemailMessage.id == message_id)
            )
            return found

    async def mark_heard(self, box: BoxKey, message_id: int) -> bool:
        async with self._db.transaction() as session:
            message = await session.scalar(_of_box(box).where(VoicemailMessage.id == message_id))
            if message is None:
                return False
            if message.heard_at is None:
                message.heard_at = datetime.now(UTC)
            return True

    async def delete(self, box: BoxKey, message_id: int) -> bool:
        """Remove the message: its row, then its file."""
        async with self._db.transaction() as session:
            message = await session.scalar(_of_box(box).where(VoicemailMessage.id == message_id))
            if message is None:
                return False
            path = self.data_dir / message.path
            await session.delete(message)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)
        return True

    async def remove_orphans(self, *, older_than: timedelta = ORPHAN_GRACE) -> int:
        """Delete the files under voicemail/ that no row refers to any more (a user's or
        group's box deleted with its messages by the database, a crash between a file and
        its row), once older than ``older_than``: a deposit writes its file before its
        row. How many were deleted."""
        async with self._db.session() as session:
            kept = set(await session.scalars(select(VoicemailMessage.path)))
            kept |= {p for p in await session.scalars(select(VoicemailBox.greeting_path)) if p}
        cutoff = time.time() - older_than.total_seconds()
        return await asyncio.to_thread(_remove_unreferenced, self.data_dir, kept, cutoff)


def _remove_unreferenced(data_dir: Path, kept: set[str], cutoff: float) -> int:
    removed = 0
    for path in (data_dir / "voicemail").rglob("*.wav"):
        if str(path.relative_to(data_dir)) in kept:
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def _of_box(box: BoxKey) -> Select[VoicemailMessage]:
    """The box's messages."""
    return (
        select(VoicemailMessage)
        .join(VoicemailBox, VoicemailBox.id == VoicemailMessage.box_id)
        .where(box.selects)
    )


async def _box(session: AsyncSession, box: BoxKey) -> VoicemailBox | None:
    row: VoicemailBox | None = await session.scalar(select(VoicemailBox).where(box.selects))
    return row


async def _new_box(session: AsyncSession, key: BoxKey) -> VoicemailBox:
    """The row of a box that had the defaults so far (flushed: it has its id)."""
    box = VoicemailBox(
        company_id=key.company_id,
        user_id=key.user_id,
        group_id=key.group_id,
        enabled=True,
        max_seconds=DEFAULT_MAX_SECONDS,
        send_email=True,
        attach_audio=True,
    )
    session.add(box)
    await session.flush()
    return box


def _replace_durably(partial: Path, final: Path) -> None:
    """Rename ``partial`` (fsynced) over ``final``, and make the rename durable."""
    os.replace(partial, final)
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
