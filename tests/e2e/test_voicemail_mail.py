"""A message left by a real phone is mailed (issue 5, email): the mail reaches a real
mail server (aiosmtpd) with the message attached, and the attachment holds the caller's
tone."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from e2e.server import DOMAIN, acme_plan
from e2e.test_call_control import in_process_server
from e2e.test_transfer import ALICE_TONE, _phone
from e2e.test_voicemail import speak_after_the_beep, tone_seconds
from nuage.store.models import VoicemailMessage, VoicemailNotification
from peers.smtp import MailSink


async def test_a_message_left_by_a_phone_is_mailed_with_its_audio(tmp_path: Path) -> None:
    async with MailSink() as sink:
        smtp = {
            "host": "127.0.0.1",
            "port": sink.port,
            "tls": "none",
            "from_address": "Nuage <voicemail@nuage.test>",
        }
        async with in_process_server(tmp_path, acme_plan(5999), sections={"smtp": smtp}) as nuage:
            target = f"127.0.0.1:{nuage.config.server.sip_port}"
            alice = _phone(tmp_path, target, "1001", ALICE_TONE)
            async with alice:
                await alice.wait_event("REGISTER_OK", timeout=10)
                # Lucas has no phone registered: his voicemail answers at once.
                await alice.dial(f"sip:1002@{DOMAIN}")
                await alice.wait_event("CALL_ESTABLISHED", timeout=10)
                await speak_after_the_beep(alice, 3.0)
                await alice.hangup()
                await alice.wait_event("CALL_CLOSED", timeout=10)
                [mail] = await sink.messages(1, within=10)
            assert nuage.db is not None
            async with nuage.db.session() as session:
                [message] = await session.scalars(select(VoicemailMessage))
                [notification] = await session.scalars(select(VoicemailNotification))
            counters = nuage.counters()
    [(recipients, _)] = sink.received
    assert recipients == ["lucas@acme.example"]
    assert mail["Subject"].startswith("Nouveau message vocal de ")
    assert "(1001)" in mail["Subject"]
    text = mail.get_body(("plain",))
    assert text is not None and "Boîte vocale: Lucas Dubois (1002)" in text.get_content()
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_filename() == f"voicemail-{message.id}.wav"
    seconds = tone_seconds(attachment.get_content(), ALICE_TONE)
    assert 2.0 < seconds <= message.duration_ms / 1000 + 0.1, seconds
    assert notification.sent_at is not None and notification.attempts == 1
    assert (counters["voicemail_mails_pending"], counters["voicemail_mails_failed"]) == (0, 0)
