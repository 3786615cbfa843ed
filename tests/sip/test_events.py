"""RFC 6665 headers (Event, Subscription-State, Accept) and the documents NOTIFYs carry:
dialog-info (RFC 4235) and PIDF (RFC 3863, RFC 4480)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from nuage.sip.event_bodies import DialogInfo, Identity, dialog_info, pidf
from nuage.sip.events import (
    EventType,
    TerminationReason,
    accepts,
    active_state,
    parse_event,
    terminated_state,
)
from nuage.sip.grammar import SipSyntaxError
from nuage.sip.message import URI, Headers, Request

DI = "{urn:ietf:params:xml:ns:dialog-info}"
PIDF_NS = "{urn:ietf:params:xml:ns:pidf}"
RPID = "{urn:ietf:params:xml:ns:pidf:rpid}"
DM = "{urn:ietf:params:xml:ns:pidf:data-model}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("dialog", EventType("dialog")),
        ("presence ; id=42", EventType("presence", "42")),
        ("message-summary;ID=a1;foo", EventType("message-summary", "a1")),
        ("presence.winfo", EventType("presence.winfo")),
    ],
)
def test_event_header_is_parsed(value: str, expected: EventType) -> None:
    assert parse_event(value) == expected


@pytest.mark.parametrize("value", ["", "dia log", "dialog;id=", "dialog;=1", "<dialog>"])
def test_bad_event_header_is_refused(value: str) -> None:
    with pytest.raises(SipSyntaxError):
        parse_event(value)


def test_event_type_prints_back() -> None:
    assert str(EventType("dialog", "7")) == "dialog;id=7"
    assert str(EventType("presence")) == "presence"


def test_subscription_states() -> None:
    assert active_state(3600) == "active;expires=3600"
    assert active_state(-2) == "active;expires=0"
    assert terminated_state(TerminationReason.TIMEOUT) == "terminated;reason=timeout"


def _subscribe(*accept: str) -> Request:
    return Request(
        "SUBSCRIBE", URI.parse("sip:1002@acme.example"), Headers(("Accept", a) for a in accept)
    )


@pytest.mark.parametrize(
    ("accept", "taken"),
    [
        ((), True),
        (("application/dialog-info+xml",), True),
        (("application/pidf+xml, Application/Dialog-Info+XML;q=0.5",), True),
        (("text/plain", "application/*"), True),
        (("*/*",), True),
        (("application/pidf+xml",), False),
        (("",), False),
    ],
)
def test_accept_header(accept: tuple[str, ...], taken: bool) -> None:
    assert accepts(_subscribe(*accept), "application/dialog-info+xml") is taken


def test_dialog_info_document() -> None:
    body = dialog_info(
        "sip:1002@acme.example",
        3,
        [
            DialogInfo("a1", "early", "recipient", Identity("sip:1001@acme.example", "Élodie")),
            DialogInfo("b2", "terminated"),
        ],
    )
    root = ET.fromstring(body)
    assert root.tag == f"{DI}dialog-info"
    assert root.attrib == {"version": "3", "state": "full", "entity": "sip:1002@acme.example"}
    first, second = root.findall(f"{DI}dialog")
    assert first.attrib == {"id": "a1", "direction": "recipient"}
    assert first.findtext(f"{DI}state") == "early"
    identity = first.find(f"{DI}remote/{DI}identity")
    assert identity is not None
    assert (identity.text, identity.get("display")) == ("sip:1001@acme.example", "Élodie")
    assert second.attrib == {"id": "b2"}
    assert second.findtext(f"{DI}state") == "terminated"
    assert second.find(f"{DI}remote") is None


def test_dialog_info_without_dialogs() -> None:
    root = ET.fromstring(dialog_info("sip:1002@acme.example", 0, []))
    assert root.findall(f"{DI}dialog") == []


def test_untrusted_text_is_escaped_and_cleaned() -> None:
    # A carrier's caller names itself: markup and control characters must not break
    # (or inject into) the document.
    name = 'Eve"/><dialog id="x">\x07&co'
    body = dialog_info(
        "sip:1002@acme.example",
        0,
        [DialogInfo("a", "early", "recipient", Identity("sip:+32475@acme.example", name))],
    )
    root = ET.fromstring(body)
    [dialog] = root.findall(f"{DI}dialog")
    identity = dialog.find(f"{DI}remote/{DI}identity")
    assert identity is not None and identity.get("display") == 'Eve"/><dialog id="x">&co'


def test_pidf_document() -> None:
    body = pidf(
        "sip:1002@acme.example",
        is_open=True,
        note="On the phone",
        activities=["on-the-phone", "busy"],
    )
    root = ET.fromstring(body)
    assert root.tag == f"{PIDF_NS}presence"
    assert root.get("entity") == "sip:1002@acme.example"
    [tuple_] = root.findall(f"{PIDF_NS}tuple")
    assert tuple_.findtext(f"{PIDF_NS}status/{PIDF_NS}basic") == "open"
    assert tuple_.findtext(f"{PIDF_NS}note") == "On the phone"
    activities = root.find(f"{DM}person/{RPID}activities")
    assert activities is not None
    assert [child.tag for child in activities] == [f"{RPID}busy", f"{RPID}on-the-phone"]


def test_pidf_closed_without_person() -> None:
    root = ET.fromstring(pidf("sip:1002@acme.example", is_open=False))
    assert root.findtext(f"{PIDF_NS}tuple/{PIDF_NS}status/{PIDF_NS}basic") == "closed"
    assert root.find(f"{PIDF_NS}tuple/{PIDF_NS}note") is None
    assert root.find(f"{DM}person") is None


def test_pidf_refuses_unknown_activities() -> None:
    with pytest.raises(ValueError, match="dancing"):
        pidf("sip:1002@acme.example", is_open=True, activities=["dancing"])
