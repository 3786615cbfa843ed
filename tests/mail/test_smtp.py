"""The SMTP client against a real server (aiosmtpd on 127.0.0.1): what it sends, and
how it tells a server it cannot use from a recipient refused for now or for good."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from nuage.mail.smtp import (
    MailDeferred,
    MailRejected,
    SmtpClient,
    SmtpUnavailable,
    TlsMode,
)
from peers.ports import free_port
from peers.smtp import MailSink


def client(port: int, tls: TlsMode = "none") -> SmtpClient:
    return SmtpClient("127.0.0.1", port, tls=tls, username=None, password=None, timeout=2.0)


def mail(to: str = "lucas@acme.example") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Nuage <voicemail@nuage.test>"
    message["To"] = to
    message["Subject"] = "Test"
    message.set_content("Bonjour\n")
    return message


async def test_a_mail_is_delivered_to_its_recipient() -> None:
    async with MailSink() as sink:
        await client(sink.port).send(mail())
        [received] = await sink.messages(1)
    assert sink.received[0][0] == ["lucas@acme.example"]
    assert received["Subject"] == "Test"
    assert received.get_content().splitlines() == ["Bonjour"]


async def test_refused_for_good_or_for_now() -> None:
    async with MailSink(refuse={"gone@acme.example"}, defer={"full@acme.example"}) as sink:
        with pytest.raises(MailRejected, match=r"^550 "):
            await client(sink.port).send(mail("gone@acme.example"))
        with pytest.raises(MailDeferred, match=r"^450 "):
            await client(sink.port).send(mail("full@acme.example"))
    assert sink.received == []


async def test_a_server_it_cannot_use() -> None:
    # Nothing listening.
    with pytest.raises(SmtpUnavailable, match="Error connecting"):
        await client(free_port()).send(mail())
    # STARTTLS asked of a server that does not offer it: no mail in clear instead.
    async with MailSink() as sink:
        with pytest.raises(SmtpUnavailable, match="STARTTLS"):
            await client(sink.port, "starttls").send(mail())
    assert sink.received == []
