"""Voicemail (F17, P5): boxes and their messages (store.py), leaving a message
(deposit.py)."""
