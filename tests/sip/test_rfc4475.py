"""RFC 4475 torture messages (byte-exact in torture/), with the outcome the RFC asks for.

Section 3.1.1 messages must parse. For section 3.1.2 the parser rejects what it can decide
with the status the RFC suggests; a rejected request carries the partial request when its
Via, From, To, Call-ID and CSeq can be echoed, so that the transport answers. Sections 3.2
to 3.4 are transaction- or application-level (420, 415, 483, registrar rules, ...): the
messages are well formed and parse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nuage.sip.message import Request, Response, make_response
from nuage.sip.parser import MessageRejected, parse_message

TORTURE = Path(__file__).parent / "torture"


def load(name: str) -> bytes:
    return (TORTURE / f"{name}.dat").read_bytes()


VALID = [
    # 3.1.1
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason",
    # 3.1.2.12: a bad Date matters only to whoever reads Date.
    "baddate",
    # 3.2 and 3.3: transaction and application layer, syntactically valid.
    "badbranch", "bcast", "bext01", "cparam01", "cparam02", "invut", "regaut01",
    "regescrt", "sdp01", "unksm2", "zeromf",
    # 3.4: RFC 2543 syntax is accepted.
    "inv2543",
]  # fmt: skip

# name -> (status, whether a partial request comes with it so that it can be answered)
INVALID = {
    "badinv01": (400, True),
    "clerr": (400, True),
    "ncl": (400, True),
    "scalar02": (400, True),
    "scalarlg": (400, False),  # a response: discarded
    "quotbal": (400, True),
    "ltgtruri": (400, True),
    "lwsruri": (400, True),
    "lwsstart": (400, True),
    "trws": (400, True),
    "escruri": (400, True),
    "regbadct": (400, True),
    "badaspec": (400, True),
    "baddn": (400, True),
    "badvers": (505, True),
    "mismatch01": (400, True),
    "mismatch02": (501, True),  # unknown method: 501 is the RFC's preference
    "bigcode": (400, False),  # a response: dropped
    # 3.3.1: no From, To or Call-ID to echo, so no valid response can be built: dropped.
    "insuf": (400, False),
    "mcl01": (400, True),
    "multi01": (400, True),
    "unkscm": (416, True),
    "novelsc": (416, True),
}


def test_every_torture_message_is_classified() -> None:
    names = {path.stem for path in TORTURE.glob("*.dat")}
    assert names == set(VALID) | set(INVALID)
    assert len(names) == 49


@pytest.mark.parametrize("name", VALID)
def test_valid_messages_parse(name: str) -> None:
    message = parse_message(load(name))
    # Everything the accessors read was validated: none of them raises.
    message.call_id, message.cseq, message.from_, message.to, message.vias  # noqa: B018
    message.contacts, message.routes, message.record_routes, message.expires  # noqa: B018
    if isinstance(message, Request):
        assert message.max_forwards is None or message.max_forwards >= 0
        assert message.cseq.method == message.method
    # Serialising is stable (it adds a Content-Length where there was none).
    again = parse_message(bytes(message))
    assert bytes(again) == bytes(message)
    assert again.body == message.body


@pytest.mark.parametrize(("name", "expected"), INVALID.items())
def test_invalid_messages_are_rejected(name: str, expected: tuple[int, bool]) -> None:
    status, answerable = expected
    with pytest.raises(MessageRejected) as caught:
        parse_message(load(name))
    assert caught.value.status == status
    assert caught.value.reason
    request = caught.value.request
    assert (request is not None) == answerable
    if request is not None:
        response = make_response(request, status, caught.value.reason)
        assert response.headers.get("Call-ID") == request.headers.get("Call-ID")
        assert bytes(response).startswith(f"SIP/2.0 {status} ".encode())


def test_wsinv_details() -> None:
    request = parse_message(load("wsinv"))
    assert isinstance(request, Request)
    assert request.uri.params == {"unknownparam": None}
    assert request.to.tag == "1918181833n"
    assert request.from_.display_name == 'J Rosenberg \\"'
    assert request.max_forwards == 68
    assert (request.cseq.seq, request.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in request.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert request.headers.get("Subject") == ""
    assert request.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert request.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = request.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert request.routes[0].uri.params == {
        "lr": None,
        "unknownwith": "value",
        "unknown-no-value": None,
    }
    assert len(request.body) == 150


def test_intmeth_details() -> None:
    request = parse_message(load("intmeth"))
    assert isinstance(request, Request)
    assert request.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert request.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert request.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert request.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert request.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert request.from_.tag == "_token~1'+`*%!-."
    assert request.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert request.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_escaping_messages() -> None:
    esc01 = parse_message(load("esc01"))
    assert isinstance(esc01, Request)
    assert esc01.uri.user == "sips:user@example.com"
    assert esc01.to.uri.user == "user"
    assert esc01.from_.uri.user == "I have spaces"
    escnull = parse_message(load("escnull"))
    assert [c.uri.user for c in escnull.contacts] == ["\x00", "\x00\x00"]
    esc02 = parse_message(load("esc02"))
    assert isinstance(esc02, Request)
    assert esc02.method == "RE%47IST%45R"
    assert esc02.to.display_name == "%Z%45"
    assert len(esc02.contacts) == 2
    assert esc02.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    semiuri = parse_message(load("semiuri"))
    assert isinstance(semiuri, Request)
    assert semiuri.uri.user == "user;par=u@example.net"


def test_datagram_framing_messages() -> None:
    dblreq = parse_message(load("dblreq"))
    assert isinstance(dblreq, Request)
    assert dblreq.method == "REGISTER"
    assert dblreq.body == b""
    mpart = parse_message(load("mpart01"))
    assert len(mpart.body) == 553
    assert b"\x00" in mpart.body
    inv2543 = parse_message(load("inv2543"))
    assert inv2543.body.startswith(b"v=0") and inv2543.headers.get("Content-Length") is None


def test_responses() -> None:
    unreason = parse_message(load("unreason"))
    assert isinstance(unreason, Response)
    assert unreason.status == 200
    assert unreason.reason.startswith("= 2**3 * 5**2 но сто девяносто девять")
    noreason = parse_message(load("noreason"))
    assert isinstance(noreason, Response)
    assert (noreason.status, noreason.reason) == (100, "")


def test_contact_parameters() -> None:
    cparam01 = parse_message(load("cparam01"))
    assert cparam01.contacts[0].params == {"unknownparam": None}
    assert cparam01.contacts[0].uri.params == {}
    cparam02 = parse_message(load("cparam02"))
    assert cparam02.contacts[0].uri.params == {"unknownparam": None}
    regescrt = parse_message(load("regescrt"))
    assert regescrt.contacts[0].uri.headers == {"Route": "<sip:sip.example.com>"}
