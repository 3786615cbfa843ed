"""A real mail server for the tests: aiosmtpd on 127.0.0.1, in its own thread, keeping
every message it accepts."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from peers.ports import free_port


class MailSink:
    """Accepts every message, except for the recipients in ``refuse`` (550 at RCPT: for
    good) and in ``defer`` (450: for now)."""

    def __init__(
        self, port: int | None = None, *, refuse: Iterable[str] = (), defer: Iterable[str] = ()
    ) -> None:
        self.port = free_port() if port is None else port
        self._refuse = set(refuse)
        self._defer = set(defer)
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.refused: list[str] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def __aenter__(self) -> MailSink:
        # start() blocks until the server answers: not on the test's loop.
        await asyncio.to_thread(self._controller.start)
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(self._controller.stop)

    async def messages(self, count: int = 1, *, within: float = 10.0) -> list[EmailMessage]:
        """The recipients' messages once ``count`` have arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.received) < count:
            if loop.time() > deadline:
                raise TimeoutError(f"{len(self.received)} of {count} messages within {within} s")
            await asyncio.sleep(0.05)
        return [message for _, message in self.received]

    # aiosmtpd handler hooks, called on the server's thread.

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self._refuse:
            self.refused.append(address)
            return "550 5.1.1 No such mailbox"
        if address in self._defer:
            self.refused.append(address)
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted"
