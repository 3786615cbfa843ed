"""Sending one message through the configured SMTP server (aiosmtplib), with its failure
told apart: the server unreachable or refusing us (try later, every message alike),
this message deferred (4xx: try it later), or refused for good (5xx: do not retry)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Literal

import aiosmtplib

TlsMode = Literal["none", "starttls", "tls"]


class MailError(Exception):
    """The message was not sent; str() says why, as the server put it."""


class SmtpUnavailable(MailError):
    """The server could not be reached or would not take mail from us (connection, TLS,
    authentication, sender refused): every message waits, none is at fault."""


class MailDeferred(MailError):
    """The server refused this message for now (4xx on its recipient or content)."""


class MailRejected(MailError):
    """The server refused this message for good (5xx on its recipient or content)."""


class SmtpClient:
    """One connection per message: notifications are rare, and a fresh connection never
    finds itself dropped by the server's idle timeout."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: TlsMode,
        username: str | None,
        password: str | None,
        timeout: float,
    ) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._username = username
        self._password = password
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        """Send ``message`` to its To address, from its From address; raises MailError."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._tls == "tls",
                # False, not None: "none" must not upgrade opportunistically, which would
                # fail on a local relay's self-signed certificate.
                start_tls=self._tls == "starttls",
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # One recipient per message: all refused is that one refused.
            raise _about_message(exc.recipients[0]) from exc
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            raise _about_message(exc) from exc
        except ValueError as exc:
            # An address that cannot be written in SMTP: it will not get better.
            raise MailRejected(str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SmtpUnavailable(f"{exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SmtpUnavailable(str(exc) or type(exc).__name__) from exc


def _about_message(exc: aiosmtplib.SMTPResponseException) -> MailError:
    text = f"{exc.code} {exc.message}"
    return MailRejected(text) if 500 <= exc.code < 600 else MailDeferred(text)
