"""The header-value grammar: URIs, addresses, Via, CSeq, lists, and format/parse round trips."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuage.sip import grammar
from nuage.sip.grammar import (
    SipSyntaxError,
    format_address,
    format_uri,
    format_via,
    parse_address,
    parse_cseq,
    parse_delta_seconds,
    parse_uri,
    parse_via,
    split_comma_list,
)
from nuage.sip.message import URI, Address, CSeq, Via

from .strategies import addresses, uris, vias


@pytest.mark.parametrize(
    ("value", "elements"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ("single", ["single"]),
        ('"Doe, John" <sip:j@x>, <sip:k@y>', ['"Doe, John" <sip:j@x>', "<sip:k@y>"]),
        ("<sip:a@x;p=1,2>, <sip:b@y>", ["<sip:a@x;p=1,2>", "<sip:b@y>"]),
        (r'"a \", b" <sip:a@x>, c', [r'"a \", b" <sip:a@x>', "c"]),
        ("a,,b", ["a", "", "b"]),
    ],
)
def test_split_comma_list(value: str, elements: list[str]) -> None:
    assert split_comma_list(value) == elements


def test_parse_full_sip_uri() -> None:
    uri = parse_uri("SIPS:alice:secret@Atlanta.example.com:5061;Transport=TCP;lr?Subject=hi&X=%20")
    assert uri == URI(
        scheme="sips",
        user="alice",
        password="secret",
        host="Atlanta.example.com",
        port=5061,
        params={"transport": "TCP", "lr": None},
        headers={"Subject": "hi", "X": " "},
    )
    assert uri.transport == "tcp"


def test_ipv6_host_is_stored_without_brackets() -> None:
    uri = parse_uri("sip:[2001:db8::10]:5070")
    assert (uri.host, uri.port) == ("2001:db8::10", 5070)
    assert uri.host_port == "[2001:db8::10]:5070"
    assert str(uri) == "sip:[2001:db8::10]:5070"


def test_user_part_is_unescaped_and_escaped_back() -> None:
    uri = parse_uri("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips:user@example.com"
    assert format_uri(uri) == "sip:sips%3Auser%40example.com@example.net"
    assert parse_uri("sip:null-%00-null@example.com").user == "null-\x00-null"


def test_user_part_may_hold_semicolons_and_question_marks() -> None:
    uri = parse_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u@example.net"
    assert uri.params == {}


def test_escaped_parameters_are_unescaped_once() -> None:
    uri = parse_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.params == {"lr": None, "name": "value%41"}


def test_tel_and_other_schemes() -> None:
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert (tel.scheme, tel.user, tel.params) == (
        "tel",
        "+1-201-555-0123",
        {"phone-context": "example.com"},
    )
    assert str(tel) == "tel:+1-201-555-0123;phone-context=example.com"
    other = parse_uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")
    assert (other.scheme, other.opaque) == ("urn", "uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com",
        "sip:",
        "sip:user@",
        "sip:host:99999",
        "sip:host:",
        "sip:[::1",
        "sip:[not-v6]",
        "sip:us er@host",
        "sip:user@host;;lr",
        "sip:host;lr;lr",
        "sip:bad%zzuser@host",
        "sip:host?noequals",
        "tel:",
        "1abc:def",
        "http:",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        parse_uri(text)


def test_name_addr_with_quoted_display_name() -> None:
    address = parse_address(r'"J Rosenberg \\\""  <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert address.display_name == 'J Rosenberg \\"'
    assert address.uri.user == "jdrosen"
    assert address.tag == "98asjd8"


def test_token_display_name_without_space_before_angle() -> None:
    address = parse_address("caller<sip:caller@example.com>;tag=323")
    assert address.display_name == "caller"
    assert address.tag == "323"


def test_addr_spec_parameters_belong_to_the_header() -> None:
    address = parse_address("sip:+19725552222@gw1.example.net;unknownparam;Tag=x")
    assert address.uri.params == {}
    assert address.params == {"unknownparam": None, "tag": "x"}
    bracketed = parse_address("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert bracketed.uri.params == {"unknownparam": None}
    assert bracketed.params == {}


def test_quoted_parameter_values_keep_their_quotes() -> None:
    address = parse_address('sip:a@b;+sip.instance="<urn:uuid:1;2>";expires=60')
    assert address.params == {"+sip.instance": '"<urn:uuid:1;2>"', "expires": "60"}
    assert parse_address(str(address)) == address


def test_wildcard_contact() -> None:
    address = parse_address(" * ")
    assert address.wildcard
    assert format_address(address) == "*"


def test_other_scheme_addresses() -> None:
    assert parse_address("isbn:2983792873").uri.opaque == "2983792873"
    assert parse_address("<http://www.example.com>;tag=3234233").uri.scheme == "http"


@pytest.mark.parametrize(
    "text",
    [
        '"Mr. J. User <sip:j.user@example.com>',
        '"Watson, Thomas" < sip:t.watson@example.org >',
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        "sip:a@b, sip:c@d",
        '"name" sip:a@b',
        "<sip:a@b",
        "<sip:a@b>;;",
        "<sip:a@b>;tag=1;tag=2",
        "<sip:a@b>;tag=a b",
        "<sip:a@b> junk",
    ],
)
def test_bad_addresses(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        parse_address(text)


def test_display_name_with_controls_is_escaped() -> None:
    address = Address(uri=URI(host="x"), display_name='BEL:\x07 NUL:\x00 "q" \\')
    assert parse_address(format_address(address)) == address
    with pytest.raises(SipSyntaxError):
        format_address(Address(uri=URI(host="x"), display_name="a\r\nb"))


def test_via_with_lws_everywhere() -> None:
    via = parse_via(
        "SIP  / 2.0  / tcp     spindle.example.com :  5061 ;  branch  =   z9hG4bK9ikj8 ;rport"
    )
    assert via == Via(
        transport="TCP",
        host="spindle.example.com",
        port=5061,
        params={"branch": "z9hG4bK9ikj8", "rport": None},
    )
    assert via.branch == "z9hG4bK9ikj8"
    assert format_via(via) == "SIP/2.0/TCP spindle.example.com:5061;branch=z9hG4bK9ikj8;rport"


def test_via_ipv6_and_received() -> None:
    via = parse_via("SIP/2.0/UDP [2001:db8::9:1]:5060;received=2001:db8::9:255;branch=z9hG4bKas3")
    assert (via.host, via.port) == ("2001:db8::9:1", 5060)
    assert via.params["received"] == "2001:db8::9:255"


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0 UDP host",
        "SIP/2.0/UDPhost",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP host:port",
        "SIP/2.0/UDP host;branch=",
        "SIP/2.0/UDP [::1",
        "",
    ],
)
def test_bad_vias(text: str) -> None:
    with pytest.raises(SipSyntaxError):
        parse_via(text)


def test_cseq() -> None:
    assert parse_cseq("0009 INVITE") == CSeq(9, "INVITE")
    assert parse_cseq(f"{2**31 - 1} ACK").seq == 2**31 - 1
    for bad in (
        f"{2**31} ACK",
        "36893488147419103232 REGISTER",
        "1",
        "x INVITE",
        "-1 BYE",
        "1 IN VITE",
    ):
        with pytest.raises(SipSyntaxError):
            parse_cseq(bad)


def test_delta_seconds() -> None:
    assert parse_delta_seconds(" 0068 ") == 68
    assert parse_delta_seconds("1" + "0" * 100) == 2**32 - 1
    for bad in ("", "-1", "1.5", "ten"):
        with pytest.raises(SipSyntaxError):
            parse_delta_seconds(bad)


@given(uris)
def test_uri_round_trip(uri: URI) -> None:
    assert parse_uri(format_uri(uri)) == uri


@given(addresses())
def test_address_round_trip(address: Address) -> None:
    assert parse_address(format_address(address)) == address


@given(vias())
def test_via_round_trip(via: Via) -> None:
    assert parse_via(format_via(via)) == via


def _outcome(parse: Callable[[], object]) -> object:
    try:
        return parse()
    except SipSyntaxError:
        return SipSyntaxError


# Text near the fast paths' edges: the characters that decide between them and the
# general path (@ ; ? : % [ ] / space), around plausible pieces.
_uri_pieces = st.sampled_from(
    [
        "alice",
        "a.b",
        "host",
        "example.com",
        "10.0.0.1",
        "5060",
        "70000",
        "00",
        "[::1]",
        "transport=udp",
        "lr",
        "%41",
        "x=y",
        "-",
        "_",
        "!",
        "$",
        "&",
        "+",
        ",",
    ]
)
_uri_glue = st.sampled_from(["", "@", ";", ":", "?", "=", "/", " ", ".", "%"])
_near_uris = st.lists(st.tuples(_uri_pieces, _uri_glue), max_size=6).map(
    lambda parts: "".join(piece + glue for piece, glue in parts)
)


@given(_near_uris)
def test_plain_uri_path_agrees_with_the_general_one(rest: str) -> None:
    text = "sip:" + rest
    assert _outcome(lambda: parse_uri(text)) == _outcome(
        lambda: grammar._parse_sip_uri_general("sip", rest, text)
    )


@given(
    st.sampled_from(["SIP/2.0/UDP ", "SIP/2.0/tcp ", "SIP/2.0/UDP  ", "SIP / 2.0/UDP "]), _near_uris
)
def test_plain_via_path_agrees_with_the_general_one(protocol: str, rest: str) -> None:
    text = protocol + rest.replace("@", ";branch=z9hG4bK")
    assert _outcome(lambda: parse_via(text)) == _outcome(lambda: grammar._parse_via_general(text))


@given(uris)
def test_plain_uri_path_agrees_on_generated_uris(uri: URI) -> None:
    text = format_uri(uri)
    scheme, _, rest = text.partition(":")
    if uri.scheme in ("sip", "sips"):
        assert parse_uri(text) == grammar._parse_sip_uri_general(scheme, rest, text)
