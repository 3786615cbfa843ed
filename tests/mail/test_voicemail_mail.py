"""The mail of a new voicemail message: its parts, its languages, its time, and a caller
name written to do harm."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from nuage.pbx.voicemail.mail import notification_mail
from nuage.store.models import Group, User, VoicemailMessage

SENDER = "Nuage <voicemail@nuage.test>"
NOW = datetime(2026, 12, 3, 14, 6, tzinfo=UTC)
WAV = b"RIFF....WAVEfmt not really a wav"


def message(caller: str = "0475123456", caller_name: str = "Élodie Martin") -> VoicemailMessage:
    return VoicemailMessage(
        id=7,
        company_id=1,
        box_id=1,
        caller=caller,
        caller_name=caller_name,
        path="voicemail/1/x.wav",
        # 14:05 UTC in December: 15:05 in Brussels (CET).
        created_at=datetime(2026, 12, 3, 14, 5, 30, tzinfo=UTC),
        duration_ms=65_400,
    )


def owner() -> User:
    return User(name="Lucas Dubois", extension="1002")


def mail_of(
    language: str = "fr",
    *,
    left: VoicemailMessage | None = None,
    audio: bytes | None = WAV,
    box_owner: User | Group | None = None,
) -> EmailMessage:
    built = notification_mail(
        left or message(),
        language=language,
        owner=box_owner or owner(),
        sender=SENDER,
        recipient="lucas@acme.test",
        audio=audio,
        now=NOW,
    )
    # What the mail server receives, read back as a mail client would.
    parsed = email.message_from_bytes(bytes(built), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(mail: EmailMessage) -> tuple[str, str]:
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_french_mail_with_the_audio_attached() -> None:
    mail = mail_of("fr", box_owner=owner())
    assert mail["Subject"] == "Nouveau message vocal de Élodie Martin (0475123456)"
    assert (mail["From"], mail["To"]) == (SENDER, "lucas@acme.test")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].endswith("@nuage.test>")
    assert mail.get_content_type() == "multipart/mixed"
    text, html = parts(mail)
    assert text == (
        "Élodie Martin (0475123456) vous a laissé un message vocal.\n"
        "\n"
        "Boîte vocale: Lucas Dubois (1002)\n"
        "Appelant: Élodie Martin (0475123456)\n"
        "Date: 3 décembre 2026 à 15:05 (CET)\n"
        "Durée: 1:05\n"
        "\n"
        "Le message est joint à ce courriel.\n"
    )
    assert '<html lang="fr">' in html
    assert "<td>3 décembre 2026 à 15:05 (CET)</td>" in html
    assert "<td>1:05</td>" in html
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_filename() == "voicemail-7.wav"
    assert attachment.get_content() == WAV


def test_a_group_boxs_mail_names_the_group() -> None:
    mail = mail_of("en", box_owner=Group(name="Support", extension="2000"))
    text, html = parts(mail)
    assert "Voicemail box: Support (2000)\n" in text
    assert "<td>Support (2000)</td>" in html


@pytest.mark.parametrize(
    ("language", "subject", "intro", "date"),
    [
        ("nl", "Nieuw voicemailbericht van", "heeft een voicemailbericht", "3 december 2026 om"),
        ("en", "New voicemail from", "left you a voicemail message", "3 December 2026 at"),
        # A language the mail has no words for: English.
        ("de", "New voicemail from", "left you a voicemail message", "3 December 2026 at"),
    ],
)
def test_languages(language: str, subject: str, intro: str, date: str) -> None:
    mail = mail_of(language)
    assert mail["Subject"].startswith(subject)
    text, html = parts(mail)
    assert intro in text and intro in html
    assert f"{date} 15:05 (CET)" in text


def test_summer_time_and_a_short_message() -> None:
    left = message()
    left.created_at = datetime(2026, 7, 1, 8, 0, 40, tzinfo=UTC)
    left.duration_ms = 9_600
    text, _ = parts(mail_of("en", left=left))
    assert "Date: 1 July 2026 at 10:00 (CEST)\n" in text
    assert "Duration: 0:10\n" in text


def test_without_audio_the_mail_points_to_the_app() -> None:
    mail = mail_of("fr", audio=None)
    assert mail.get_content_type() == "multipart/alternative"
    assert list(mail.iter_attachments()) == []
    text, html = parts(mail)
    assert "Écoutez-le dans l'application Nuage." in text
    assert "Écoutez-le dans l&#x27;application Nuage." in html


def test_a_caller_without_name_or_number() -> None:
    text, _ = parts(mail_of("en", left=message(caller="", caller_name="")))
    assert text.startswith("unknown number left you a voicemail message.\n")
    named_as_number = mail_of("en", left=message(caller="1001", caller_name="1001"))
    assert named_as_number["Subject"] == "New voicemail from 1001"


def test_a_hostile_caller_name_is_escaped_and_forges_no_header() -> None:
    hostile = '<script>alert("x")</script>\r\nBcc: victim@evil.test\r\n\r\n<b>'
    mail = mail_of("en", left=message(caller_name=hostile))
    assert mail["Bcc"] is None
    assert mail["Subject"] == (
        'New voicemail from <script>alert("x")</script> Bcc: victim@evil.test <b> (0475123456)'
    )
    text, html = parts(mail)
    assert "<script>" not in html and "<b>" not in html
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Bcc: victim@evil.test &lt;b&gt;" in html
    )
    # One line in the text too: nothing of it starts a line of its own.
    assert not any(line.startswith("Bcc") for line in text.splitlines())
