"""Message summaries (RFC 3842 5.2): the bodies of message-waiting NOTIFYs."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuage.sip.event_bodies import message_summary

# RFC 3842 5.2, for the lines we send: msg-status-line, msg-account, one summary line.
_GRAMMAR = re.compile(
    r"Messages-Waiting: (?P<waiting>yes|no)\r\n"
    r"Message-Account: (?P<account>sip:[^\r\n]+)\r\n"
    r"Voice-Message: (?P<new>\d+)/(?P<old>\d+) \((?P<urgent_new>\d+)/(?P<urgent_old>\d+)\)\r\n"
)


def test_the_rfc_example() -> None:
    body = message_summary("sip:alice@vmail.example.com", 2, 8, urgent_old=2)
    assert body == (
        b"Messages-Waiting: yes\r\n"
        b"Message-Account: sip:alice@vmail.example.com\r\n"
        b"Voice-Message: 2/8 (0/2)\r\n"
    )


def test_no_new_message_is_nothing_waiting() -> None:
    body = message_summary("sip:1002@acme.example", 0, 3)
    assert body.startswith(b"Messages-Waiting: no\r\n")
    assert b"Voice-Message: 0/3 (0/0)\r\n" in body


@given(
    new=st.integers(0, 10_000),
    old=st.integers(0, 10_000),
    urgent=st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
)
def test_every_summary_follows_the_grammar(new: int, old: int, urgent: tuple[int, int]) -> None:
    urgent_new, urgent_old = min(urgent[0], new), min(urgent[1], old)
    body = message_summary(
        "sip:1002@acme.example", new, old, urgent_new=urgent_new, urgent_old=urgent_old
    )
    match = _GRAMMAR.fullmatch(body.decode())
    assert match is not None, body
    assert match["waiting"] == ("yes" if new else "no")
    counts = (int(match[name]) for name in ("new", "old", "urgent_new", "urgent_old"))
    assert tuple(counts) == (new, old, urgent_new, urgent_old)


@pytest.mark.parametrize(
    ("new", "old", "urgent_new", "urgent_old"),
    [(-1, 0, 0, 0), (0, -1, 0, 0), (1, 0, 2, 0), (0, 1, 0, 2)],
)
def test_impossible_counts_are_refused(
    new: int, old: int, urgent_new: int, urgent_old: int
) -> None:
    with pytest.raises(ValueError, match="bad message counts"):
        message_summary(
            "sip:1002@acme.example", new, old, urgent_new=urgent_new, urgent_old=urgent_old
        )


def test_an_account_cannot_add_lines() -> None:
    with pytest.raises(ValueError, match="bad message account"):
        message_summary("sip:1002@acme.example\r\nMessages-Waiting: no", 1, 0)
