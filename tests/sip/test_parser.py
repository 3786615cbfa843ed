"""parse_message: start lines, folding, limits, validation, and serialise/parse round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuage.sip.grammar import SipSyntaxError
from nuage.sip.message import URI, Headers, Request, Response, make_response
from nuage.sip.parser import MessageRejected, parse_message

from .strategies import requests, responses

HEADERS = (
    "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@example.com>\r\n"
    "From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.example.com>\r\n"
)


def invite(
    extra: str = "", body: bytes = b"", *, start: str = "INVITE sip:bob@example.com SIP/2.0"
) -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body else ""
    return f"{start}\r\n{HEADERS}{extra}{length}\r\n".encode() + body


def rejected(data: bytes, **limits: int) -> MessageRejected:
    with pytest.raises(MessageRejected) as caught:
        parse_message(data, **limits)
    return caught.value


def test_typical_invite() -> None:
    request = parse_message(invite(body=b"v=0\r\n"))
    assert isinstance(request, Request)
    assert (request.method, request.uri) == ("INVITE", URI(user="bob", host="example.com"))
    assert request.body == b"v=0\r\n"
    assert request.top_via.branch == "z9hG4bK776asdhds"
    assert request.from_.display_name == "Alice"
    assert request.to.tag is None
    assert request.cseq.seq == 314159
    assert request.call_id == "a84b4c76e66710@pc33.example.com"


def test_compact_and_case_insensitive_names_and_folding() -> None:
    data = (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/TCP a.example.com;branch=z9hG4bK1,\r\n SIP/2.0/UDP b.example.com\r\n"
        b"t: <sip:bob@example.com>\r\nf: <sip:alice@example.com>;tag=1\r\n"
        b"i: abc\r\nCSEQ:\r\n\t1\r\n  OPTIONS\r\nx-custom:  one\r\n two  \r\nl: 0\r\n\r\n"
    )
    request = parse_message(data)
    assert [via.host for via in request.vias] == ["a.example.com", "b.example.com"]
    assert request.headers.get("CSeq") == "1 OPTIONS"
    assert request.headers.get("X-Custom") == "one two"
    assert [name for name, _ in request.headers][:5] == ["Via", "To", "From", "Call-ID", "CSeq"]


def test_response() -> None:
    data = b"SIP/2.0 180 Ringing\r\n" + HEADERS.encode() + b"Content-Length: 0\r\n\r\n"
    response = parse_message(data)
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (180, "Ringing")


def test_leading_crlfs_are_skipped_and_trailing_bytes_ignored() -> None:
    request = parse_message(b"\r\n\r\n" + invite(body=b"abc") + b"garbage")
    assert request.body == b"abc"


def test_missing_content_length_takes_the_rest_of_the_datagram() -> None:
    assert parse_message(invite() + b"rest").body == b"rest"


def test_max_forwards_is_optional() -> None:
    data = invite().replace(b"Max-Forwards: 70\r\n", b"")
    request = parse_message(data)
    assert isinstance(request, Request)
    assert request.max_forwards is None


@pytest.mark.parametrize(
    ("data", "status", "answerable"),
    [
        (b"", 400, False),
        (b"\r\n\r\n", 400, False),
        (invite()[:-4], 400, False),  # no end of headers
        (invite(start="INVITE sip:bob@example.com SIP/3.0"), 505, True),
        (invite(start="INVITE sip:bob@example.com HTTP/1.1"), 400, True),
        (invite(start="INVITE sip:bob@example.com"), 400, True),
        (invite(start="INV@TE sip:bob@example.com SIP/2.0"), 400, False),
        (invite(start="INVITE mailto:bob@example.com SIP/2.0"), 416, True),
        (invite(start="INVITE sip:bob@exa mple.com SIP/2.0"), 400, True),
        (invite(start="BYE sip:bob@example.com SIP/2.0"), 400, True),
        (invite("Content-Length: five\r\n"), 400, True),
        (invite("Content-Length: 10\r\n"), 400, True),
        (invite("Max-Forwards: 70\r\n"), 400, True),
        (invite("Expires: soon\r\n"), 400, True),
        (invite("Route: *\r\n"), 400, True),
        (invite("Contact: *\r\n"), 400, True),
        (invite("Record-Route: <sip:p1.example.com;lr>, sip:a b\r\n"), 400, True),
        (invite("Bad Name: x\r\n"), 400, False),
        (invite("NoColon\r\n"), 400, False),
        (invite().replace(b"Call-ID: a84b4c76e66710@pc33.example.com", b"Call-ID: a b"), 400, True),
        (invite().replace(b"Call-ID: a84b4c76e66710@pc33.example.com\r\n", b""), 400, False),
        (invite().replace(b"Via: SIP/2.0/UDP pc33", b"Via: SIP/2.0/UDP\r\n pc33\n"), 400, False),
        (invite().replace(b"\r\nVia", b"\r\n Via", 1), 400, False),  # folding with no header
        (invite("Subject: \xff\r\n").replace(b"\xc3\xbf", b"\xff"), 400, False),  # not UTF-8
        (b"SIP/2.0 99 Too Low\r\n" + HEADERS.encode() + b"\r\n", 400, False),
        (b"SIP/3.0 200 OK\r\n" + HEADERS.encode() + b"\r\n", 505, False),
        (
            b"SIP/2.0 200 OK\r\n"
            + HEADERS.encode().replace(b"CSeq: 314159 INVITE\r\n", b"")
            + b"\r\n",
            400,
            False,
        ),
    ],
)
def test_rejections(data: bytes, status: int, answerable: bool) -> None:
    exc = rejected(data)
    assert exc.status == status
    assert exc.reason
    assert (exc.request is not None) == answerable
    assert isinstance(exc, SipSyntaxError)


def test_rejected_request_carries_what_was_parsed() -> None:
    exc = rejected(invite(start="INVITE sip:bob@example.com SIP/2.0  "))
    assert exc.request is not None
    assert exc.request.method == "INVITE"
    assert exc.request.uri == URI(user="bob", host="example.com")
    assert exc.request.headers.get("CSeq") == "314159 INVITE"


def test_size_limits() -> None:
    body = b"x" * 1000
    assert rejected(invite(body=body), max_size=800).status == 413
    exc = rejected(invite(body=body), max_size=len(invite(body=body)) - 500)
    assert (exc.status, exc.request is not None) == (413, True)
    huge_header = invite("X-Big: " + "a" * 2000 + "\r\n")
    assert (
        rejected(huge_header, max_size=1000).status,
        rejected(huge_header, max_size=1000).request,
    ) == (413, None)
    assert rejected(invite("X-A: 1\r\n" * 20), max_headers=10).status == 400
    assert parse_message(invite("X-A: 1\r\n" * 20), max_headers=40)


def test_headers_lookup_of_unknown_names_ignores_case() -> None:
    headers = Headers([("X-Thing", "1"), ("x-thing", "2")])
    assert headers.get("X-THING") == "1"
    assert headers.values("x-Thing") == ["1", "2"]
    headers.set("X-THING", "3")
    assert headers.values("x-thing") == ["3"]
    headers.remove("x-thing")
    assert "X-Thing" not in headers


def test_serialize_recomputes_content_length_and_refuses_injection() -> None:
    request = parse_message(invite(body=b"abc"))
    request.body = b"abcdef"
    request.headers.add("Content-Length", "99")
    data = bytes(request)
    assert data.count(b"Content-Length") == 1
    assert b"Content-Length: 6\r\n" in data
    assert parse_message(data).body == b"abcdef"
    request.headers.add("Subject", "hi\r\nVia: SIP/2.0/UDP evil")
    with pytest.raises(SipSyntaxError):
        bytes(request)


@given(requests())
def test_request_round_trip(request: Request) -> None:
    assert parse_message(bytes(request)) == request


@given(responses())
def test_response_round_trip(response: Response) -> None:
    assert parse_message(bytes(response)) == response


def _fresh(message: Request | Response) -> tuple[object, ...]:
    """The typed accessors' values, parsed again from a copy of the text."""
    copy = parse_message(bytes(message))
    copy.headers = Headers(list(copy.headers))  # no values kept from parsing
    return _accessed(copy)


def _accessed(message: Request | Response) -> tuple[object, ...]:
    return (
        message.vias,
        message.top_via,
        message.from_,
        message.to,
        message.call_id,
        message.cseq,
        message.contacts,
        message.routes,
        message.record_routes,
    )


@given(requests())
def test_accessors_of_a_parsed_request_are_what_parsing_the_text_gives(request: Request) -> None:
    assert _accessed(parse_message(bytes(request))) == _fresh(request)


@given(requests(), st.integers(100, 699))
def test_accessors_of_a_response_echoing_its_request_are_what_parsing_gives(
    request: Request, status: int
) -> None:
    parsed = parse_message(bytes(request))
    assert isinstance(parsed, Request)
    response = make_response(parsed, status)
    assert _accessed(response) == _fresh(response)


def test_accessors_follow_changes_to_their_header() -> None:
    request = parse_message(invite("Route: <sip:p1.example.com;lr>\r\n"))
    assert isinstance(request, Request)
    assert request.to.tag is None
    request.headers.set("To", "<sip:bob@example.com>;tag=x")
    assert request.to.tag == "x"
    request.headers.prepend("Via", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp")
    assert request.top_via.host == "proxy.example.com"
    assert [via.host for via in request.vias] == ["proxy.example.com", "pc33.example.com"]
    request.headers.replace_first("Via", "SIP/2.0/UDP other.example.com;branch=z9hG4bKo")
    assert [via.host for via in request.vias] == ["other.example.com", "pc33.example.com"]
    request.headers.add("Contact", "<sip:alice@10.0.0.1>")
    assert [c.uri.host for c in request.contacts] == ["pc33.example.com", "10.0.0.1"]
    request.headers.remove("Route")
    assert request.routes == []
    request.headers.set("CSeq", "7 INVITE")
    assert request.cseq.seq == 7
    request.headers.set("i", "new-call-id")  # compact form of Call-ID
    assert request.call_id == "new-call-id"


def test_a_copy_of_the_headers_changes_apart_from_the_original() -> None:
    request = parse_message(invite())
    assert isinstance(request, Request)
    assert request.from_.tag == "1928301774"
    copy = Request(request.method, request.uri, request.headers.copy())
    copy.headers.set("From", "<sip:carol@example.com>;tag=c")
    assert copy.from_.tag == "c"
    assert request.from_.tag == "1928301774"


def test_returned_lists_are_the_callers_own() -> None:
    request = parse_message(invite())
    request.vias.clear()
    request.contacts.append(request.contacts[0])
    assert len(request.vias) == 1
    assert len(request.contacts) == 1


def test_a_bad_lower_via_does_not_hide_the_top_one() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1, not a via")])
    request = Request("OPTIONS", URI(host="example.com"), headers)
    assert request.top_via.host == "a.example.com"
    with pytest.raises(SipSyntaxError):
        request.vias  # noqa: B018
