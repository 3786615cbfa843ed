"""Dialogs (RFC 3261 section 12): creation on both sides, in-dialog requests, CSeq order."""

from __future__ import annotations

import pytest

from nuage.sip.dialog import (
    Dialog,
    DialogState,
    request_dialog_id,
    response_dialog_id,
)
from nuage.sip.message import URI, Headers, Request, Response, make_response
from nuage.sip.peer import Peer

PEER = Peer("udp", "192.0.2.10", 5060)


def invite(record_routes: tuple[str, ...] = ()) -> Request:
    headers = Headers()
    headers.add("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1")
    for route in record_routes:
        headers.add("Record-Route", route)
    headers.add("From", '"Alice" <sip:alice@example.com>;tag=alice1')
    headers.add("To", "<sip:bob@example.com>")
    headers.add("Call-ID", "dlg-1@example.com")
    headers.add("CSeq", "10 INVITE")
    headers.add("Contact", "<sip:alice@192.0.2.10:5060>")
    return Request("INVITE", URI(user="bob", host="example.com"), headers)


def answer(request: Request, status: int = 200, record_routes: tuple[str, ...] = ()) -> Response:
    response = make_response(request, status)
    response.headers.set("To", "<sip:bob@example.com>;tag=bob1")
    response.headers.add("Contact", "<sip:bob@192.0.2.20:5070>")
    for route in record_routes:
        response.headers.add("Record-Route", route)
    return response


def test_uas_dialog_from_invite_and_our_2xx() -> None:
    request = invite(("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    dialog = Dialog.from_uas(request, answer(request), peer=PEER)
    assert dialog.id == ("dlg-1@example.com", "bob1", "alice1")
    assert dialog.remote_target == URI(user="alice", host="192.0.2.10", port=5060)
    assert dialog.remote_seq == 10
    assert dialog.state is DialogState.CONFIRMED
    # UAS: the route set is the Record-Route in the request's order.
    assert [route.uri.host for route in dialog.route_set] == ["p1.example.com", "p2.example.com"]
    assert dialog.local_contact is not None and dialog.local_contact.uri.port == 5070

    bye = dialog.create_request("BYE")
    assert bye.method == "BYE"
    assert bye.uri == dialog.remote_target
    assert bye.headers.values("Route") == [str(r) for r in dialog.route_set]
    assert bye.from_.tag == "bob1" and bye.from_.uri.user == "bob"
    assert bye.to.tag == "alice1" and bye.to.display_name == "Alice"
    assert bye.call_id == "dlg-1@example.com"
    assert bye.cseq.seq == 1 and bye.cseq.method == "BYE"
    assert "Contact" not in bye.headers  # BYE is no target refresh
    assert not dialog.matches(request)  # no To tag yet: not in the dialog
    in_dialog = invite()
    in_dialog.headers.set("To", "<sip:bob@example.com>;tag=bob1")
    assert dialog.matches(in_dialog)


def test_uac_dialog_from_2xx_reverses_record_route() -> None:
    request = invite()
    response = answer(request, record_routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    dialog = Dialog.from_uac(request, response, peer=PEER)
    assert dialog.id == ("dlg-1@example.com", "alice1", "bob1")
    assert dialog.local_seq == 10 and dialog.remote_seq is None
    assert dialog.remote_target == URI(user="bob", host="192.0.2.20", port=5070)
    assert [route.uri.host for route in dialog.route_set] == ["p2.example.com", "p1.example.com"]
    assert dialog.matches(response)
    assert response_dialog_id(response) == dialog.id

    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", headers=[("X-Test", "1")])
    assert reinvite.cseq.seq == 11
    assert reinvite.headers.get("X-Test") == "1"
    assert reinvite.body == b"v=0\r\n"
    # re-INVITE refreshes the target: our Contact goes in.
    assert reinvite.contacts[0].uri.user == "alice"

    ack = dialog.create_ack(11)
    assert ack.method == "ACK" and ack.cseq.seq == 11 and ack.cseq.method == "ACK"
    assert ack.uri == dialog.remote_target
    assert dialog.local_seq == 11  # an ACK takes no new number


def test_strict_router_becomes_request_uri() -> None:
    request = invite()
    response = answer(request, record_routes=("<sip:strict.example.com>",))
    dialog = Dialog.from_uac(request, response)
    bye = dialog.create_request("BYE")
    assert bye.uri.host == "strict.example.com"
    assert [route.uri.host for route in bye.routes] == ["192.0.2.20"]


def test_incoming_request_order_and_target_refresh() -> None:
    request = invite()
    dialog = Dialog.from_uas(request, answer(request))
    reinvite = invite()
    reinvite.headers.set("To", "<sip:bob@example.com>;tag=bob1")
    reinvite.headers.set("CSeq", "11 INVITE")
    reinvite.headers.set("Contact", "<sip:alice@198.51.100.1:6000>")
    assert request_dialog_id(reinvite) == dialog.id
    assert dialog.handle_request(reinvite) is None
    assert dialog.remote_seq == 11
    assert dialog.remote_target.host == "198.51.100.1"

    stale = invite()
    stale.headers.set("CSeq", "5 INFO")
    assert dialog.handle_request(Request("INFO", stale.uri, stale.headers)) == 500
    assert dialog.remote_seq == 11

    ack = invite()
    ack.headers.set("CSeq", "11 ACK")
    assert dialog.handle_request(Request("ACK", ack.uri, ack.headers)) is None


def test_uas_dialog_starts_without_remote_seq_on_uac_side_then_learns_it() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request))
    bye = invite()
    bye.headers.set("CSeq", "1 BYE")
    assert dialog.handle_request(Request("BYE", bye.uri, bye.headers)) is None
    assert dialog.remote_seq == 1


def test_early_dialog_confirmed_by_2xx_recomputes_route_set() -> None:
    request = invite()
    early = answer(request, 180, record_routes=("<sip:old.example.com;lr>",))
    dialog = Dialog.from_uac(request, early)
    assert dialog.state is DialogState.EARLY
    ok = answer(request, 200, record_routes=("<sip:new.example.com;lr>",))
    ok.headers.set("Contact", "<sip:bob@192.0.2.30>")
    dialog.handle_response(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert [route.uri.host for route in dialog.route_set] == ["new.example.com"]
    assert dialog.remote_target.host == "192.0.2.30"


def test_dialog_needs_tags_and_contact() -> None:
    request = invite()
    untagged = make_response(request, 200)
    untagged.headers.add("Contact", "<sip:bob@192.0.2.20>")
    with pytest.raises(ValueError, match="To tag"):
        Dialog.from_uac(request, untagged)
    no_contact = make_response(request, 200)
    no_contact.headers.set("To", "<sip:bob@example.com>;tag=x")
    with pytest.raises(ValueError, match="Contact"):
        Dialog.from_uac(request, no_contact)
    with pytest.raises(ValueError, match="create_ack"):
        Dialog.from_uas(request, answer(request)).create_request("ACK")
