"""Hypothesis strategies for SIP objects, within what the grammar can express.

Generated objects are in the normal form the parsers produce (lower-case parameter names,
upper-case Via transport, stripped header values, a Content-Length matching the body), so
that ``parse(format(x)) == x`` is the property to test.
"""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from nuage.sip.message import (
    URI,
    Address,
    CSeq,
    Headers,
    Request,
    Response,
    Via,
    make_response,
)

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"

tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
param_names = tokens.map(str.lower)

labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
hostnames = st.lists(labels, min_size=1, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda address: str(ipaddress.IPv6Address(address)))
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.one_of(st.none(), st.integers(min_value=0, max_value=65535))

# Anything printable, escaping does the rest; surrogates cannot be encoded at all.
escapable = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    min_size=1,
    max_size=12,
)

uri_params = st.dictionaries(
    escapable.map(str.lower).filter(lambda name: name.lower() == name),
    st.one_of(st.none(), st.text(TOKEN_CHARS + "%:/[]&+$ @;?", max_size=10)),
    max_size=3,
)
uri_headers = st.dictionaries(escapable, st.text(TOKEN_CHARS + " @;&=", max_size=10), max_size=2)


@st.composite
def sip_uris(draw: st.DrawFn, *, with_headers: bool = True) -> URI:
    user = draw(st.one_of(st.none(), escapable))
    return URI(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=user,
        password=draw(st.one_of(st.none(), st.text(ALNUM + "&=+$,:@ ", max_size=8)))
        if user is not None
        else None,
        host=draw(hosts),
        port=draw(ports),
        params=draw(uri_params),
        headers=draw(uri_headers) if with_headers else {},
    )


tel_uris = st.builds(
    URI,
    scheme=st.just("tel"),
    user=st.text("0123456789-.()", min_size=1, max_size=12).map(lambda n: "+" + n),
    params=st.dictionaries(param_names, st.one_of(st.none(), tokens), max_size=2),
)
opaque_uris = st.builds(
    URI,
    scheme=st.sampled_from(["http", "urn", "mailto", "isbn"]),
    opaque=st.text(ALNUM + ":/.-_@;?=&%", min_size=1, max_size=20),
)
uris = st.one_of(sip_uris(), tel_uris, opaque_uris)
request_uris = st.one_of(sip_uris(with_headers=False), tel_uris)

# gen-value: token, host or quoted-string (kept with its quotes).
quoted_strings = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=10).map(
    lambda text: '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
)
gen_values = st.one_of(
    st.none(), tokens, hosts.map(lambda h: f"[{h}]" if ":" in h else h), quoted_strings
)
header_params = st.dictionaries(param_names, gen_values, max_size=3)

display_names = st.one_of(
    st.none(),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=15),
)


@st.composite
def addresses(draw: st.DrawFn) -> Address:
    return Address(uri=draw(uris), display_name=draw(display_names), params=draw(header_params))


@st.composite
def vias(draw: st.DrawFn) -> Via:
    return Via(
        transport=draw(st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS", "SCTP"])),
        host=draw(hosts),
        port=draw(ports),
        params=draw(header_params),
    )


methods = st.one_of(st.sampled_from(["INVITE", "ACK", "BYE", "REGISTER", "OPTIONS"]), tokens)
header_values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
extension_names = st.text(ALNUM + "-", min_size=2, max_size=12).map(lambda n: "X-" + n)
bodies = st.binary(max_size=200)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(methods)
    headers = Headers()
    for via in draw(st.lists(vias(), min_size=1, max_size=3)):
        headers.add("Via", str(via))
    headers.add("Max-Forwards", str(draw(st.integers(0, 255))))
    headers.add("From", str(draw(addresses())))
    headers.add("To", str(draw(addresses())))
    headers.add("Call-ID", draw(tokens) + "@" + draw(hostnames))
    headers.add("CSeq", str(CSeq(draw(st.integers(0, 2**31 - 1)), method)))
    for contact in draw(st.lists(addresses(), max_size=2)):
        headers.add("Contact", str(contact))
    for name, value in draw(st.lists(st.tuples(extension_names, header_values), max_size=3)):
        headers.add(name, value.strip())
    body = draw(bodies)
    headers.add("Content-Length", str(len(body)))
    return Request(method, draw(request_uris), headers, body)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    request = draw(requests())
    reason = draw(
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).map(str.strip)
    )
    response = make_response(request, draw(st.integers(100, 699)), reason)
    body = draw(bodies)
    response.body = body
    response.headers.add("Content-Length", str(len(body)))
    return response
