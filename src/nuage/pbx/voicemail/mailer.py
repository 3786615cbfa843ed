"""The sender of voicemail mails: takes the outbox's due rows one at a time, writes each
mail and hands it to the SMTP server.

Nothing is lost to an outage: a mail not sent stays in the outbox and is tried again
after a jittered, doubling delay (30 s up to an hour by default); a server that cannot be
reached pauses every mail for such a delay, rather than having each fail in turn. A
refusal for good (5xx on the recipient or content) fails the mail at once; one not sent
within ``give_up_after`` (5 days by default, as mail servers keep theirs) is failed too.
Both are logged as errors and stay in the table with their last error. The rows are in
the database, so a restarted server carries on where the last one stopped; a new message
wakes the sender at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from nuage.mail.smtp import MailDeferred, MailRejected, SmtpClient, SmtpUnavailable
from nuage.pbx.voicemail.mail import notification_mail
from nuage.pbx.voicemail.outbox import MailOutbox, Notification
from nuage.store.models import Company, Group, User, VoicemailMessage

log = logging.getLogger(__name__)

_BATCH = 20


class VoicemailMailer:
    def __init__(
        self,
        outbox: MailOutbox,
        smtp: SmtpClient,
        *,
        data_dir: Path,
        sender: str,
        retry_after: float = 30.0,
        max_retry_after: float = 3600.0,
        give_up_after: timedelta = timedelta(days=5),
        lease: timedelta = timedelta(minutes=10),
        stop_grace: float = 5.0,
    ) -> None:
        """``sender``: the From of every mail. ``lease``: how long a row taken by a sender
        is left to it (longer than any send), before another may take it. ``stop_grace``:
        how long a stop waits for the mail being sent."""
        self._outbox = outbox
        self._smtp = smtp
        self._data_dir = data_dir
        self._sender = sender
        self._retry_after = retry_after
        self._max_retry_after = max_retry_after
        self._give_up_after = give_up_after
        self._lease = lease
        self._stop_grace = stop_grace
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Consecutive failures to reach the server, and until when (loop time) to wait.
        self._server_failures = 0
        self._paused_until = 0.0
        # As of the last look at the outbox.
        self.pending = 0
        self.failed = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def message_left(
        self, company: Company, owner: User | Group, message: VoicemailMessage
    ) -> None:
        """A voicemail listener: a new message may have a mail to send."""
        self._wake.set()

    async def close(self) -> None:
        """Stop once the mail being sent is; one still not sent after ``stop_grace`` is
        put back in the outbox, to be sent on the next start. Cut short, a send the server
        took already would be sent again."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        _, sending = await asyncio.wait({self._task}, timeout=self._stop_grace)
        if sending:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                wait = await self._send_due()
            except Exception:
                # The database, most likely; a row taken meanwhile waits for its lease.
                log.exception("voicemail mails: looking again in %.0f s", self._retry_after)
                wait = self._retry_after
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _send_due(self) -> float:
        """Send what is due unless the server is known to be down; the seconds until the
        next look."""
        now = datetime.now(UTC)
        for abandoned in await self._outbox.give_up(now - self._give_up_after, now):
            log.error(
                "voicemail mail %d to %s failed: not sent within %s; last error: %s",
                abandoned.id,
                abandoned.recipient,
                self._give_up_after,
                abandoned.last_error,
            )
        loop = asyncio.get_running_loop()
        reachable = loop.time() >= self._paused_until
        while reachable and not self._stopping:
            now = datetime.now(UTC)
            due = await self._outbox.due(now, _BATCH)
            if not due:
                break
            for notification_id in due:
                if self._stopping:
                    break
                notification = await self._outbox.take(notification_id, now, self._lease)
                # None: another node took it, or its message was deleted.
                if notification is not None and not await self._send(notification):
                    reachable = False
                    break
        state = await self._outbox.state()
        self.pending, self.failed = state.pending, state.failed
        # Rows left by another node that stopped are seen within the longest delay.
        wait = self._max_retry_after
        if state.next_due is not None:
            wait = min(wait, (state.next_due - datetime.now(UTC)).total_seconds())
        return max(wait, self._paused_until - loop.time(), 0.0)

    async def _send(self, notification: Notification) -> bool:
        """Try ``notification``'s mail; False when the server could not be reached."""
        try:
            await self._smtp.send(await self._mail(notification))
        except MailRejected as exc:
            log.error(
                "voicemail mail %d to %s refused: %s", notification.id, notification.recipient, exc
            )
            await self._outbox.failed(notification.id, datetime.now(UTC), str(exc))
        except MailDeferred as exc:
            log.warning(
                "voicemail mail %d to %s deferred: %s", notification.id, notification.recipient, exc
            )
            await self._retry(notification, str(exc))
        except SmtpUnavailable as exc:
            self._server_failures += 1
            pause = self._delay(self._server_failures)
            self._paused_until = asyncio.get_running_loop().time() + pause
            log.warning("mail server unavailable, next try in %.1f s: %s", pause, exc)
            await self._retry(notification, str(exc))
            return False
        except OSError as exc:
            # The audio could not be read; a file system that comes back sends it.
            log.error("voicemail mail %d: %s", notification.id, exc)
            await self._retry(notification, f"audio unreadable: {exc}")
        except asyncio.CancelledError:
            # Stopping: the next start sends it, rather than waiting for the lease.
            await asyncio.shield(self._outbox.retry(notification.id, datetime.now(UTC), "stopped"))
            raise
        else:
            self._server_failures = 0
            await self._outbox.sent(notification.id, datetime.now(UTC))
            log.info("voicemail mail %d sent to %s", notification.id, notification.recipient)
        return True

    async def _mail(self, notification: Notification) -> EmailMessage:
        audio = None
        if notification.attach_audio:
            path = self._data_dir / notification.message.path
            audio = await asyncio.to_thread(path.read_bytes)
        return notification_mail(
            notification.message,
            language=notification.company.language,
            owner=notification.owner,
            sender=self._sender,
            recipient=notification.recipient,
            audio=audio,
            now=datetime.now(UTC),
        )

    async def _retry(self, notification: Notification, error: str) -> None:
        delay = timedelta(seconds=self._delay(notification.attempts))
        await self._outbox.retry(notification.id, datetime.now(UTC) + delay, error)

    def _delay(self, failures: int) -> float:
        """Doubling from ``retry_after``, at most ``max_retry_after``, give or take a
        quarter so that mails put off together are not all tried again together."""
        delay = min(self._retry_after * 2.0 ** min(failures - 1, 32), self._max_retry_after)
        return delay * random.uniform(0.75, 1.25)
