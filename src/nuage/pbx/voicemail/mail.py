"""The mail telling of a new voicemail message: plain text and HTML in the company's
language (French, Dutch or English), with who called, when and for how long, and the
audio attached when the box asks for it.

Caller names come from the caller's SIP From header: anything at all. They are made
printable on one line for the text and the subject (a line break would forge headers)
and escaped for the HTML.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

from nuage.mail.address import mail_address
from nuage.store.models import Group, User, VoicemailMessage

# Companies have no time zone of their own yet, and all are Belgian so far. The zone's
# abbreviation (CET, CEST) is written next to the time, so it is never ambiguous.
TIME_ZONE = ZoneInfo("Europe/Brussels")


@dataclass(frozen=True, slots=True)
class _Words:
    subject: str  # {caller}
    left: str  # {caller}
    for_box: str
    caller: str
    when: str
    duration: str
    attached: str
    in_app: str
    unknown: str
    at: str  # between the date and the hour
    months: tuple[str, ...]


_WORDS = {
    "fr": _Words(
        subject="Nouveau message vocal de {caller}",
        left="{caller} vous a laissé un message vocal.",
        for_box="Boîte vocale",
        caller="Appelant",
        when="Date",
        duration="Durée",
        attached="Le message est joint à ce courriel.",
        in_app="Écoutez-le dans l'application Nuage.",
        unknown="numéro inconnu",
        at="à",
        months=(
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ),
    ),
    "nl": _Words(
        subject="Nieuw voicemailbericht van {caller}",
        left="{caller} heeft een voicemailbericht voor u achtergelaten.",
        for_box="Voicemailbox",
        caller="Beller",
        when="Datum",
        duration="Duur",
        attached="Het bericht zit als bijlage bij deze e-mail.",
        in_app="Beluister het in de Nuage-app.",
        unknown="onbekend nummer",
        at="om",
        months=(
            "januari",
            "februari",
            "maart",
            "april",
            "mei",
            "juni",
            "juli",
            "augustus",
            "september",
            "oktober",
            "november",
            "december",
        ),
    ),
    "en": _Words(
        subject="New voicemail from {caller}",
        left="{caller} left you a voicemail message.",
        for_box="Voicemail box",
        caller="Caller",
        when="Date",
        duration="Duration",
        attached="The message is attached to this email.",
        in_app="Listen to it in the Nuage app.",
        unknown="unknown number",
        at="at",
        months=(
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
    ),
}
_FALLBACK_LANGUAGE = "en"


def notification_mail(
    message: VoicemailMessage,
    *,
    language: str,
    owner: User | Group,
    sender: str,
    recipient: str,
    audio: bytes | None,
    now: datetime,
) -> EmailMessage:
    """The mail of ``message`` from ``sender`` (a From value) to ``recipient``; ``audio``:
    the message's WAV, attached when given."""
    words = _WORDS.get(language, _WORDS[_FALLBACK_LANGUAGE])
    caller = _one_line(message.caller)
    name = _one_line(message.caller_name)
    number = caller or words.unknown
    who = f"{name} ({number})" if name and name != caller else number
    facts = [
        (words.for_box, f"{_one_line(owner.name)} ({owner.extension})"),
        (words.caller, who),
        (words.when, _when(message.created_at, words)),
        (words.duration, _duration(message.duration_ms)),
    ]
    ending = words.attached if audio is not None else words.in_app
    mail = EmailMessage()
    mail["Subject"] = words.subject.format(caller=who)
    mail["From"] = sender
    mail["To"] = recipient
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = make_msgid("voicemail", domain=mail_address(sender).domain)
    # RFC 3834: no auto-reply (out of office) to a machine.
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(_text(words.left.format(caller=who), facts, ending))
    mail.add_alternative(_html(words.left.format(caller=who), facts, ending, language), "html")
    if audio is not None:
        mail.add_attachment(
            audio, maintype="audio", subtype="wav", filename=f"voicemail-{message.id}.wav"
        )
    return mail


def _text(intro: str, facts: list[tuple[str, str]], ending: str) -> str:
    lines = [intro, "", *(f"{label}: {value}" for label, value in facts), "", ending]
    return "\n".join(lines) + "\n"


def _html(intro: str, facts: list[tuple[str, str]], ending: str, language: str) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><th align="left" style="padding-right:1em">{e(label)}</th><td>{e(value)}</td></tr>'
        for label, value in facts
    )
    return (
        f'<!DOCTYPE html>\n<html lang="{e(language)}"><head><meta charset="utf-8"></head>'
        f"<body><p>{e(intro)}</p><table>{rows}</table><p>{e(ending)}</p></body></html>\n"
    )


def _one_line(value: str) -> str:
    """``value`` with control characters (line breaks among them) as spaces, trimmed."""
    printable = "".join(char if char.isprintable() else " " for char in value)
    return " ".join(printable.split())


def _when(moment: datetime, words: _Words) -> str:
    local = moment.astimezone(TIME_ZONE)
    month = words.months[local.month - 1]
    return f"{local.day} {month} {local.year} {words.at} {local:%H:%M} ({local:%Z})"


def _duration(milliseconds: int) -> str:
    seconds = round(milliseconds / 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"
