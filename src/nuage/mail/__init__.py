"""Outgoing mail (smtp.py): a protocol library like sip/ and media/, it knows nothing of
companies, users or voicemail."""
