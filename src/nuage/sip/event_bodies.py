"""The documents NOTIFYs carry: dialog-info (RFC 4235, the busy-lamp field), PIDF
presence (RFC 3863, with RFC 4480 activities) and message summaries (RFC 3842, the
message-waiting lamp).

All are full-state documents built from plain values; the caller decides what the
dialogs, the presence and the counts are. Text that reaches the XML (display names come
from callers, hence from the network) is escaped, and characters XML 1.0 cannot carry at
all are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

DIALOG_INFO = "application/dialog-info+xml"
PIDF = "application/pidf+xml"
MESSAGE_SUMMARY = "application/simple-message-summary"

DialogState = Literal["trying", "proceeding", "early", "confirmed", "terminated"]
Direction = Literal["initiator", "recipient"]

# RFC 4480 3.2: the activities a person can be engaged in.
ACTIVITIES = frozenset(
    {
        "appointment",
        "away",
        "breakfast",
        "busy",
        "dinner",
        "holiday",
        "in-transit",
        "looking-for-work",
        "meal",
        "meeting",
        "on-the-phone",
        "performance",
        "permanent-absence",
        "playing",
        "presentation",
        "shopping",
        "sleeping",
        "spectator",
        "steering",
        "travel",
        "tv",
        "unknown",
        "vacation",
        "working",
        "worship",
    }
)

_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return escape(_NOT_IN_XML.sub("", value))


def _attribute(value: str) -> str:
    return quoteattr(_NOT_IN_XML.sub("", value))


@dataclass(frozen=True, slots=True)
class Identity:
    """A party of a dialog: its URI and the name to show."""

    uri: str
    display: str = ""

    def element(self) -> str:
        display = f" display={_attribute(self.display)}" if self.display else ""
        return f"<identity{display}>{_text(self.uri)}</identity>"


@dataclass(frozen=True, slots=True)
class DialogInfo:
    """One ``<dialog>`` of a dialog-info document. ``id`` must stay the same through
    the dialog's life: it is how a phone follows one call from early to terminated."""

    id: str
    state: DialogState
    direction: Direction | None = None
    remote: Identity | None = None


def dialog_info(entity: str, version: int, dialogs: Iterable[DialogInfo]) -> bytes:
    """A full-state dialog-info document (RFC 4235 4.1) about ``entity``'s dialogs.
    ``version`` counts the documents sent in one subscription, from 0."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"'
        f' version="{version}" state="full" entity={_attribute(entity)}>',
    ]
    for dialog in dialogs:
        direction = f' direction="{dialog.direction}"' if dialog.direction else ""
        lines.append(f"  <dialog id={_attribute(dialog.id)}{direction}>")
        lines.append(f"    <state>{dialog.state}</state>")
        if dialog.remote is not None:
            lines.append(f"    <remote>{dialog.remote.element()}</remote>")
        lines.append("  </dialog>")
    lines.append("</dialog-info>")
    return ("\n".join(lines) + "\n").encode()


def pidf(
    entity: str, *, is_open: bool, note: str | None = None, activities: Iterable[str] = ()
) -> bytes:
    """A PIDF document (RFC 3863) with one tuple, open when the presentity accepts
    communication (``is_open``), else closed; ``activities`` (RFC 4480 names) describe
    the person (RFC 4479)."""
    wanted = sorted(set(activities))
    unknown = [activity for activity in wanted if activity not in ACTIVITIES]
    if unknown:
        raise ValueError(f"not RFC 4480 activities: {unknown}")
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<presence xmlns="urn:ietf:params:xml:ns:pidf"'
        ' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
        ' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"'
        f" entity={_attribute(entity)}>",
        '  <tuple id="line">',
        f"    <status><basic>{'open' if is_open else 'closed'}</basic></status>",
    ]
    if note:
        lines.append(f"    <note>{_text(note)}</note>")
    lines.append("  </tuple>")
    if wanted:
        lines.append('  <dm:person id="person">')
        activity_elements = "".join(f"<rpid:{activity}/>" for activity in wanted)
        lines.append(f"    <rpid:activities>{activity_elements}</rpid:activities>")
        lines.append("  </dm:person>")
    lines.append("</presence>")
    return ("\n".join(lines) + "\n").encode()


def message_summary(
    account: str, new: int, old: int, *, urgent_new: int = 0, urgent_old: int = 0
) -> bytes:
    """A message summary (RFC 3842 5.2) of the voice messages of ``account`` (a SIP
    URI): ``new`` and ``old`` messages, of which ``urgent_new`` and ``urgent_old`` are
    urgent. Messages are waiting while any is new."""
    if min(new, old, urgent_new, urgent_old) < 0 or urgent_new > new or urgent_old > old:
        raise ValueError(f"bad message counts {new}/{old} ({urgent_new}/{urgent_old})")
    if any(character in account for character in "\r\n"):
        raise ValueError(f"bad message account {account!r}")
    lines = [
        f"Messages-Waiting: {'yes' if new else 'no'}",
        f"Message-Account: {account}",
        f"Voice-Message: {new}/{old} ({urgent_new}/{urgent_old})",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()
