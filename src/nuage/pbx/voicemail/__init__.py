"""Voicemail (F17, P5): boxes and their messages (store.py), leaving a message
(deposit.py), listening from a phone (access.py), mailing new messages: the mail
(mail.py), its outbox (outbox.py) and the sender that empties it (mailer.py)."""
