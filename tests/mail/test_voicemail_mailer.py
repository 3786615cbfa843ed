"""The voicemail mail sender against a real mail server (aiosmtpd on 127.0.0.1): a new
message is mailed with its audio; a server that is down, then up, gets it; a refused
recipient fails the mail once and for all, as does one never sent in time; a sender that
stops mid-send leaves the mail to the next; nothing is mailed that the box or the
configuration does not ask for."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from e2e.server import DOMAIN, acme_plan
from nuage.mail.smtp import SmtpClient
from nuage.pbx.provision import apply_plan
from nuage.pbx.voicemail.mailer import VoicemailMailer
from nuage.pbx.voicemail.outbox import MailOutbox
from nuage.pbx.voicemail.store import BoxKey, VoicemailStore
from nuage.store.database import Database
from nuage.store.models import Company, Group, User, VoicemailMessage, VoicemailNotification
from peers import audio, waiting
from peers.ports import free_port
from peers.smtp import MailSink

pytestmark = pytest.mark.db

TONE = 697.0
SENDER = "Nuage <voicemail@nuage.test>"
ELODIE = "elodie@acme.example"
# Lucas's mail goes to the reception, without the audio; Camille wants none.
BOXES = """
[[voicemail]]
extension = "1002"
email = "reception@acme.example"
attach_audio = false

[[voicemail]]
extension = "1003"
send_email = false

[[groups]]
name = "Support"
extension = "2000"
members = ["1002"]

[[groups]]
name = "Sales"
extension = "2100"
members = ["1002"]

[[voicemail]]
extension = "2000"
email = "support@acme.example"
"""


@dataclass
class Acme:
    db: Database
    store: VoicemailStore  # with mail on, as with [smtp] in the configuration


@dataclass
class Left:
    """What a voicemail listener is told of a new message."""

    company: Company
    owner: User | Group
    message: VoicemailMessage

    def tell(self, mailer: VoicemailMailer) -> None:
        mailer.message_left(self.company, self.owner, self.message)


@pytest.fixture
async def acme(database: Database, tmp_path: Path) -> Acme:
    plan = tmp_path / "plan.toml"
    plan.write_text(acme_plan(5999, extra=BOXES))
    await apply_plan(database, plan)
    return Acme(database, VoicemailStore(database, tmp_path, mail=True))


async def leave(
    acme: Acme, extension: str = "1001", *, store: VoicemailStore | None = None
) -> Left:
    """A 2 s message of TONE in the box of ``extension`` (a user's or a group's), kept as
    a deposit keeps it."""
    store = store or acme.store
    async with acme.db.session() as session:
        company = await session.scalar(select(Company).where(Company.domain == DOMAIN))
        assert company is not None
        owner: User | Group | None = await session.scalar(
            select(User).where(User.company_id == company.id, User.extension == extension)
        ) or await session.scalar(
            select(Group).where(Group.company_id == company.id, Group.extension == extension)
        )
        assert owner is not None
    path = store.new_message_path(company.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio.write_tone_wav(path, TONE, duration=2.0)
    message = await store.add_message(
        BoxKey.of(owner), caller="0475123456", caller_name="Marc", path=path, duration_ms=2000
    )
    return Left(company, owner, message)


@contextlib.asynccontextmanager
async def running(
    acme: Acme,
    port: int,
    *,
    give_up_after: timedelta = timedelta(days=5),
    lease: timedelta = timedelta(minutes=10),
) -> AsyncIterator[VoicemailMailer]:
    """A sender to 127.0.0.1:``port`` that tries again within 0.1 to 0.5 s."""
    client = SmtpClient("127.0.0.1", port, tls="none", username=None, password=None, timeout=2.0)
    mailer = VoicemailMailer(
        MailOutbox(acme.db),
        client,
        data_dir=acme.store.data_dir,
        sender=SENDER,
        retry_after=0.1,
        max_retry_after=0.4,
        give_up_after=give_up_after,
        lease=lease,
        stop_grace=0.5,
    )
    mailer.start()
    try:
        yield mailer
    finally:
        await mailer.close()


async def notification(db: Database) -> VoicemailNotification:
    async with db.session() as session:
        [row] = await session.scalars(select(VoicemailNotification))
        return row


async def until(
    db: Database, condition: Callable[[VoicemailNotification], bool]
) -> VoicemailNotification:
    for _ in range(200):
        row = await notification(db)
        if condition(row):
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached: {row.__dict__}")


def tone_of(wav: bytes) -> tuple[float | None, float]:
    """The tone that dominates a mono 8 kHz WAV, and the WAV's length in seconds."""
    with wave.open(io.BytesIO(wav), "rb") as reader:
        assert (reader.getnchannels(), reader.getframerate()) == (1, 8000)
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    floats = samples.astype(np.float64) / 32768
    return audio.dominant_tone(floats, 8000, (TONE, 1000.0, 1500.0)), len(samples) / 8000


def logged_error(caplog: pytest.LogCaptureFixture, words: str) -> bool:
    return any(r.levelno == logging.ERROR and words in r.getMessage() for r in caplog.records)


async def test_a_new_message_is_mailed_at_once_with_its_audio(acme: Acme) -> None:
    async with MailSink() as sink, running(acme, sink.port) as mailer:
        left = await leave(acme)
        loop = asyncio.get_running_loop()
        told = loop.time()
        left.tell(mailer)
        [mail] = await sink.messages(1, within=5)
        took = loop.time() - told
    assert took < 1.0, took
    [(recipients, _)] = sink.received
    assert recipients == [ELODIE]
    assert mail["Subject"] == "Nouveau message vocal de Marc (0475123456)"
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == f"voicemail-{left.message.id}.wav"
    assert tone_of(attachment.get_content()) == (TONE, 2.0)
    row = await notification(acme.db)
    assert (row.attempts, row.last_error, row.next_attempt_at) == (1, None, None)
    assert row.sent_at is not None and row.failed_at is None
    assert (mailer.pending, mailer.failed) == (0, 0)


async def test_a_server_down_then_up_gets_the_mail_and_the_message_is_intact(
    acme: Acme,
) -> None:
    port = free_port()
    async with running(acme, port) as mailer:
        left = await leave(acme)
        path = acme.store.data_dir / left.message.path
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        left.tell(mailer)
        # Nothing listens: the try fails and the mail waits.
        failed = await until(acme.db, lambda row: row.last_error is not None)
        assert failed.sent_at is None and failed.next_attempt_at is not None
        assert (failed.last_error or "").startswith("Error connecting to 127.0.0.1")
        # The sender counts its outbox after writing the failure down.
        await waiting.until(lambda: mailer.pending == 1, within=2.0)
        async with MailSink(port) as sink:
            [mail] = await sink.messages(1, within=5)
            sent = await until(acme.db, lambda row: row.sent_at is not None)
    assert sent.attempts >= 2 and sent.last_error is None
    [attachment] = list(mail.iter_attachments())
    assert tone_of(attachment.get_content()) == (TONE, 2.0)
    # The message itself: its row and its file, unchanged.
    [kept] = await acme.store.messages(BoxKey.of(left.owner))
    assert (kept.id, kept.path, kept.duration_ms) == (left.message.id, left.message.path, 2000)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


async def test_a_refused_recipient_fails_the_mail_once(
    acme: Acme, caplog: pytest.LogCaptureFixture
) -> None:
    async with MailSink(refuse={ELODIE}) as sink, running(acme, sink.port) as mailer:
        (await leave(acme)).tell(mailer)
        row = await until(acme.db, lambda row: row.failed_at is not None)
        # Several retry delays later, it has not been tried again.
        await asyncio.sleep(0.6)
        assert sink.refused == [ELODIE] and sink.received == []
    assert row.last_error is not None and row.last_error.startswith("550 ")
    assert (row.attempts, row.next_attempt_at, row.sent_at) == (1, None, None)
    assert (mailer.pending, mailer.failed) == (0, 1)
    assert logged_error(caplog, "refused")


async def test_a_mail_never_sent_fails_after_the_time_limit(
    acme: Acme, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(acme, free_port(), give_up_after=timedelta(seconds=0.5)) as mailer:
        (await leave(acme)).tell(mailer)
        row = await until(acme.db, lambda row: row.failed_at is not None)
    assert row.attempts >= 1 and (row.last_error or "").startswith("Error connecting")
    assert logged_error(caplog, "not sent within")


async def test_the_next_process_sends_what_the_last_left(acme: Acme) -> None:
    # Left while no sender ran: the server stopped just after the message was kept.
    left = await leave(acme)
    # A server that takes the connection and never answers: the send hangs until the
    # sender stops.
    hung: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        async with running(acme, server.sockets[0].getsockname()[1], lease=timedelta(hours=1)):
            await until(acme.db, lambda row: row.attempts == 1)
            await asyncio.sleep(0.2)
            assert hung
    finally:
        server.close()
        for writer in hung:
            writer.close()
    stopped = await notification(acme.db)
    assert (stopped.last_error, stopped.sent_at) == ("stopped", None)
    # Due again at once, not after the hour's lease: the next sender mails it on start.
    async with MailSink() as sink, running(acme, sink.port):
        [mail] = await sink.messages(1, within=5)
    assert mail["Subject"].endswith("(0475123456)")
    assert (await notification(acme.db)).message_id == left.message.id


async def test_only_what_the_box_and_the_configuration_ask_for(acme: Acme) -> None:
    await leave(acme, "1002")
    await leave(acme, "1003")
    # A group's box mails its own address only: Sales has none.
    await leave(acme, "2000")
    await leave(acme, "2100")
    # Without [smtp], no mail at all.
    await leave(acme, "1001", store=VoicemailStore(acme.db, acme.store.data_dir))
    async with MailSink() as sink, running(acme, sink.port):
        lucas, support = await sink.messages(2, within=5)
        await asyncio.sleep(0.3)
    assert [recipients for recipients, _ in sink.received] == [
        ["reception@acme.example"],
        ["support@acme.example"],
    ]
    text = lucas.get_body(("plain",))
    assert text is not None and "Lucas Dubois (1002)" in text.get_content()
    assert list(lucas.iter_attachments()) == []
    text = support.get_body(("plain",))
    assert text is not None and "Support (2000)" in text.get_content()
    assert len(list(support.iter_attachments())) == 1


async def test_a_deleted_message_takes_its_mail_with_it(acme: Acme) -> None:
    left = await leave(acme)
    assert await acme.store.delete(BoxKey.of(left.owner), left.message.id)
    async with acme.db.session() as session:
        assert list(await session.scalars(select(VoicemailNotification))) == []
