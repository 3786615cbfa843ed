"""The RFC 3261 grammar for header values and URIs (parsing and formatting).

Parsers take one header value with line folding already undone (the message parser joins
continuation lines with a single space) and raise :class:`SipSyntaxError` on anything the
grammar does not allow. Formatters produce text that the parsers read back to an equal
object.

Header parameter values are kept as they appeared, quotes included (``+sip.instance`` in
RFC 5626 must stay quoted when forwarded); URI parameters and headers, user and password
are %-unescaped on parse and escaped again on format.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

# A plain module import survives the import cycle with nuage.sip.message: the names are
# looked up when a parser runs, by which time both modules are complete.
import nuage.sip.message as _message

if TYPE_CHECKING:
    from nuage.sip.message import URI, Address, CSeq, Message, Via


class SipSyntaxError(ValueError):
    """Input that does not follow the SIP grammar. ``str()`` says what and where."""


# token (RFC 3261 section 25.1): alphanum and -.!%*_+`'~
_TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN_RE = re.compile(rf"[{_TOKEN_CHARS}]+")
# gen-value = token / host / quoted-string; a host adds ":" and brackets (IPv6) to token.
_GEN_VALUE_RE = re.compile(rf'[{_TOKEN_CHARS}:\[\]]+|"(?:[^"\\]|\\.)*"', re.DOTALL)
_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
# URI components, escaped as %HH. unreserved = alphanum / mark.
_UNRESERVED = "-_.!~*'()"
_USER_SAFE = _UNRESERVED + "&=+$,;?/"
_PASSWORD_SAFE = _UNRESERVED + "&=+$,"
_PARAM_SAFE = _UNRESERVED + "[]/:&+$"
_HEADER_SAFE = _UNRESERVED + "[]/?:+$"
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
_PARAM_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})*")
_HNAME_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})+")
_HVALUE_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
# Hostnames allow "_" beyond RFC 1034: deployed devices use it and it is never ambiguous.
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_.])?")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OPAQUE_RE = re.compile(r"[^\s<>\"]+")
# telephone-subscriber (RFC 3966): digits, visual separators, "*", "#" and the DTMF pause letters.
_TEL_NUMBER_RE = re.compile(r"\+?[0-9A-Fa-f*#\-.()pPwW]+")
_CSEQ_RE = re.compile(rf"([0-9]+)[ \t]+([{_TOKEN_CHARS}]+)")
_DIGITS_RE = re.compile(r"[0-9]+")
_WS = " \t"
# The shapes nearly every URI and Via on the wire take, matched in one step; anything else
# (escapes, a password, IPv6, URI headers, LWS, a ';' or '/' in the user part) takes the
# general path, which accepts a superset and raises the errors. Hosts as _HOSTNAME_RE.
_HOST = r"[A-Za-z0-9_](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_.])?"
_PLAIN_SIP_URI_RE = re.compile(
    rf"(?:([A-Za-z0-9\-_.!~*'()&=+$,]+)@)?({_HOST})(?::([0-9]{{1,5}}))?(?:;([^@?]*))?"
)
_PLAIN_VIA_RE = re.compile(rf"SIP/2\.0/([A-Za-z]+) ({_HOST})(?::([0-9]{{1,5}}))?(;.*)?", re.DOTALL)

MAX_CSEQ = 2**31 - 1
MAX_DELTA_SECONDS = 2**32 - 1


def split_comma_list(value: str) -> list[str]:
    """Split a list header value on commas outside quoted strings and ``<...>``.

    Elements are stripped; empty elements (``a,,b``) are kept so that a validating caller
    can reject them.
    """
    if "," not in value:
        return [value.strip(_WS)]
    if '"' not in value and "<" not in value:
        return [element.strip(_WS) for element in value.split(",")]
    elements: list[str] = []
    start = 0
    in_quotes = in_angle = False
    index = 0
    length = len(value)
    while index < length:
        char = value[index]
        if in_quotes:
            if char == "\\":
                index += 1
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif in_angle:
            in_angle = char != ">"
        elif char == "<":
            in_angle = True
        elif char == ",":
            elements.append(value[start:index].strip(_WS))
            start = index + 1
        index += 1
    elements.append(value[start:].strip(_WS))
    return elements


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    # surrogateescape keeps escaped octets that are not UTF-8 so that formatting restores them.
    return unquote(text, errors="surrogateescape")


# Per set of safe characters, text that quote() would return unchanged: letters, digits,
# "_.-~" and those. Formatting a URI or address on every request made quote() a hot spot.
_UNESCAPED: dict[str, re.Pattern[str]] = {}


def _escape(text: str, safe: str) -> str:
    unescaped = _UNESCAPED.get(safe)
    if unescaped is None:
        unescaped = _UNESCAPED[safe] = re.compile(f"[A-Za-z0-9_.~{re.escape(safe)}-]*")
    if unescaped.fullmatch(text):
        return text
    return quote(text, safe=safe, errors="surrogateescape")


def _parse_host(text: str, context: str) -> str:
    if text.startswith("["):
        if not text.endswith("]"):
            raise SipSyntaxError(f"unterminated IPv6 reference in {context}: {text!r}")
        inner = text[1:-1]
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise SipSyntaxError(f"bad IPv6 address in {context}: {text!r}") from None
        return inner
    if not _HOSTNAME_RE.fullmatch(text):
        raise SipSyntaxError(f"bad host in {context}: {text!r}")
    return text


def _parse_port(text: str, context: str) -> int:
    if not _PORT_RE.fullmatch(text) or int(text) > 65535:
        raise SipSyntaxError(f"bad port in {context}: {text!r}")
    return int(text)


def _split_host_port(text: str, context: str, space: str = "") -> tuple[str, str | None]:
    """Split ``host[:port]`` (IPv6 in brackets); ``space`` is the whitespace allowed around ':'."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise SipSyntaxError(f"unterminated IPv6 reference in {context}")
        host, after = text[: close + 1], text[close + 1 :].lstrip(space)
        if not after:
            return host, None
        if after[0] != ":":
            raise SipSyntaxError(f"bad host and port in {context}")
        return host, after[1:].lstrip(space)
    host, colon, port = text.partition(":")
    if not colon:
        return host, None
    return host.rstrip(space), port.lstrip(space)


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _parse_uri_params(text: str, uri_text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, equals, value = item.partition("=")
        if not name or not _PARAM_RE.fullmatch(name) or not _PARAM_RE.fullmatch(value):
            raise SipSyntaxError(f"bad URI parameter {item!r} in {uri_text!r}")
        key = _unescape(name).lower()
        if key in params:
            raise SipSyntaxError(f"duplicate URI parameter {key!r} in {uri_text!r}")
        params[key] = _unescape(value) if equals else None
    return params


def _parse_uri_headers(text: str, uri_text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in text.split("&"):
        name, equals, value = item.partition("=")
        if not equals or not _HNAME_RE.fullmatch(name) or not _HVALUE_RE.fullmatch(value):
            raise SipSyntaxError(f"bad URI header {item!r} in {uri_text!r}")
        key = _unescape(name)
        if key in headers:
            raise SipSyntaxError(f"duplicate URI header {key!r} in {uri_text!r}")
        headers[key] = _unescape(value)
    return headers


# Parses of URIs and addresses are cached: the same From, To, Contact and Request-URI text
# comes back in every message of a dialog. The objects are therefore shared and must be
# treated as read-only (build a new one to change a parameter).
@functools.lru_cache(maxsize=4096)
def parse_uri(text: str) -> URI:
    """Parse a SIP, SIPS or tel URI; any other absolute URI keeps its text in ``opaque``."""
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.fullmatch(scheme):
        raise SipSyntaxError(f"not an absolute URI: {text!r}")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip_uri(scheme, rest, text)
    if scheme == "tel":
        number, _, param_text = rest.partition(";")
        if not _TEL_NUMBER_RE.fullmatch(number):
            raise SipSyntaxError(f"bad telephone number in {text!r}")
        params = _parse_uri_params(param_text, text) if param_text else {}
        return _message.URI(scheme="tel", user=number, params=params)
    if not _OPAQUE_RE.fullmatch(rest):
        raise SipSyntaxError(f"bad {scheme} URI: {text!r}")
    return _message.URI(scheme=scheme, opaque=rest)


def _parse_sip_uri(scheme: str, rest: str, text: str) -> URI:
    plain = _PLAIN_SIP_URI_RE.fullmatch(rest)
    if plain is not None:
        plain_user, plain_host, plain_port, plain_params = plain.groups()
        port = int(plain_port) if plain_port is not None else None
        if port is None or port <= 65535:
            params = _parse_uri_params(plain_params, text) if plain_params is not None else {}
            return _message.URI(
                scheme=scheme, user=plain_user, host=plain_host, port=port, params=params
            )
    return _parse_sip_uri_general(scheme, rest, text)


def _parse_sip_uri_general(scheme: str, rest: str, text: str) -> URI:
    # The user part may hold ";", "?" and "/" (RFC 4475 intmeth, semiuri), so userinfo is
    # everything before the "@", which no other part of a SIP URI may contain unescaped.
    user: str | None = None
    password: str | None = None
    userinfo, at, hostpart = rest.partition("@")
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        if not _USER_RE.fullmatch(user_text) or not _PASSWORD_RE.fullmatch(password_text):
            raise SipSyntaxError(f"bad user part in {text!r}")
        user = _unescape(user_text)
        if colon:
            password = _unescape(password_text)
    else:
        hostpart = userinfo
    hostport, question, header_text = hostpart.partition("?")
    hostport, semicolon, param_text = hostport.partition(";")
    host_text, port_text = _split_host_port(hostport, text)
    host = _parse_host(host_text, text)
    port = _parse_port(port_text, text) if port_text is not None else None
    params = _parse_uri_params(param_text, text) if semicolon else {}
    headers = _parse_uri_headers(header_text, text) if question else {}
    return _message.URI(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=params,
        headers=headers,
    )


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(
        f";{_escape(name, _PARAM_SAFE)}"
        if value is None
        else f";{_escape(name, _PARAM_SAFE)}={_escape(value, _PARAM_SAFE)}"
        for name, value in params.items()
    )


def format_uri(uri: URI) -> str:
    if uri.opaque is not None:
        return f"{uri.scheme}:{uri.opaque}"
    if uri.scheme == "tel":
        return f"tel:{uri.user or ''}{_format_params(uri.params)}"
    parts = [uri.scheme, ":"]
    if uri.user is not None:
        parts.append(_escape(uri.user, _USER_SAFE))
        if uri.password is not None:
            parts.append(":" + _escape(uri.password, _PASSWORD_SAFE))
        parts.append("@")
    parts.append(_format_host(uri.host))
    if uri.port is not None:
        parts.append(f":{uri.port}")
    parts.append(_format_params(uri.params))
    if uri.headers:
        parts.append(
            "?"
            + "&".join(
                f"{_escape(name, _HEADER_SAFE)}={_escape(value, _HEADER_SAFE)}"
                for name, value in uri.headers.items()
            )
        )
    return "".join(parts)


def _parse_header_params(text: str, context: str) -> dict[str, str | None]:
    """Parse ``;name[=value]...`` where ``text`` starts at the first ';'."""
    if '"' not in text:
        return _parse_plain_header_params(text, context)
    params: dict[str, str | None] = {}
    index = 0
    length = len(text)
    while index < length:
        if text[index] != ";":
            raise SipSyntaxError(f"expected ';' in {context}: {text[index:]!r}")
        index = _skip_ws(text, index + 1)
        match = TOKEN_RE.match(text, index)
        if match is None:
            raise SipSyntaxError(f"bad parameter name in {context}: {text[index:]!r}")
        name = match.group().lower()
        if name in params:
            raise SipSyntaxError(f"duplicate parameter {name!r} in {context}")
        index = _skip_ws(text, match.end())
        value: str | None = None
        if index < length and text[index] == "=":
            index = _skip_ws(text, index + 1)
            value_match = _GEN_VALUE_RE.match(text, index)
            if value_match is None:
                raise SipSyntaxError(f"bad value of parameter {name!r} in {context}")
            value = value_match.group()
            index = _skip_ws(text, value_match.end())
        params[name] = value
    return params


def _parse_plain_header_params(text: str, context: str) -> dict[str, str | None]:
    """The common case of :func:`_parse_header_params`: no quoted string, so ';' splits."""
    params: dict[str, str | None] = {}
    items = text.split(";")
    if items[0].strip(_WS):
        raise SipSyntaxError(f"expected ';' in {context}: {text!r}")
    for index in range(1, len(items)):
        name, equals, value = items[index].partition("=")
        name = name.strip(_WS).lower()
        if not TOKEN_RE.fullmatch(name):
            raise SipSyntaxError(f"bad parameter name {name!r} in {context}")
        if name in params:
            raise SipSyntaxError(f"duplicate parameter {name!r} in {context}")
        if equals:
            value = value.strip(_WS)
            if not _GEN_VALUE_RE.fullmatch(value):
                raise SipSyntaxError(f"bad value of parameter {name!r} in {context}")
            params[name] = value
        else:
            params[name] = None
    return params


def _skip_ws(text: str, index: int) -> int:
    length = len(text)
    while index < length and text[index] in _WS:
        index += 1
    return index


def _format_header_params(params: dict[str, str | None]) -> str:
    for name, value in params.items():
        if not TOKEN_RE.fullmatch(name) or (
            value is not None and not _GEN_VALUE_RE.fullmatch(value)
        ):
            raise SipSyntaxError(f"parameter {name}={value} cannot be formatted")
    return "".join(
        f";{name}" if value is None else f";{name}={value}" for name, value in params.items()
    )


@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> Address:
    """Parse a name-addr or addr-spec with header parameters, or the Contact wildcard ``*``."""
    text = text.strip(_WS)
    if text == "*":
        return _message.Address(uri=_message.URI(), wildcard=True)
    display_name: str | None = None
    if text.startswith('"'):
        match = _QUOTED_RE.match(text)
        if match is None:
            raise SipSyntaxError(f"unterminated quoted display name in {text!r}")
        display_name = _QUOTED_PAIR_RE.sub(r"\1", match.group(1))
        index = _skip_ws(text, match.end())
        if not text.startswith("<", index):
            raise SipSyntaxError(f"expected '<' after display name in {text!r}")
    else:
        index = text.find("<")
        if 0 <= text.find(";") < index:
            # An addr-spec whose parameters quote a '<' (+sip.instance="<urn:...>").
            index = -1
        elif index > 0:
            words = text[:index].split()
            if not all(TOKEN_RE.fullmatch(word) for word in words):
                raise SipSyntaxError(f"display name must be tokens or quoted in {text!r}")
            display_name = " ".join(words)
    if index >= 0:
        close = text.find(">", index)
        if close < 0:
            raise SipSyntaxError(f"missing '>' in {text!r}")
        uri_text = text[index + 1 : close]
        if not uri_text or uri_text[0] in _WS or uri_text[-1] in _WS:
            raise SipSyntaxError(f"whitespace inside <> in {text!r}")
        rest = text[close + 1 :].lstrip(_WS)
    else:
        # addr-spec: RFC 3261 section 20.10, parameters after the URI belong to the header.
        uri_text, semicolon, rest = text.partition(";")
        uri_text = uri_text.rstrip(_WS)
        rest = semicolon + rest
        if "?" in uri_text or "," in uri_text:
            raise SipSyntaxError(f"a URI with '?' or ',' must be enclosed in <>: {text!r}")
    uri = parse_uri(uri_text)
    params = _parse_header_params(rest, text) if rest else {}
    return _message.Address(uri=uri, display_name=display_name, params=params)


def _quote(text: str) -> str:
    if "\r" in text or "\n" in text:
        raise SipSyntaxError(f"CR or LF cannot appear in a quoted string: {text!r}")
    escaped = []
    for char in text:
        # quoted-pair covers what qdtext does not: '"', '\' and the controls except LWS.
        if char in '"\\' or (char < " " and char != "\t") or char == "\x7f":
            escaped.append("\\" + char)
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def format_address(address: Address) -> str:
    if address.wildcard:
        return "*"
    uri = format_uri(address.uri)
    text = f"<{uri}>" if address.display_name is None else f"{_quote(address.display_name)} <{uri}>"
    return text + _format_header_params(address.params)


def parse_via(text: str) -> Via:
    """Parse one Via element: ``SIP / 2.0 / UDP host[:port][;params]`` (LWS around '/')."""
    plain = _PLAIN_VIA_RE.fullmatch(text)
    if plain is not None:
        transport, host, port_text, param_text = plain.groups()
        port = int(port_text) if port_text is not None else None
        if port is None or port <= 65535:
            params = _parse_header_params(param_text, text) if param_text is not None else {}
            return _message.Via(transport=transport.upper(), host=host, port=port, params=params)
    return _parse_via_general(text)


def _parse_via_general(text: str) -> Via:
    parts = text.split("/", 2)
    if len(parts) != 3:
        raise SipSyntaxError(f"bad Via sent-protocol in {text!r}")
    name, version = parts[0].strip(_WS), parts[1].strip(_WS)
    rest = parts[2].lstrip(_WS)
    transport_match = TOKEN_RE.match(rest)
    if not TOKEN_RE.fullmatch(name) or not TOKEN_RE.fullmatch(version) or not transport_match:
        raise SipSyntaxError(f"bad Via sent-protocol in {text!r}")
    transport = transport_match.group().upper()
    index = transport_match.end()
    sent_by_start = _skip_ws(rest, index)
    if sent_by_start == index:
        raise SipSyntaxError(f"missing whitespace before Via sent-by in {text!r}")
    sent_by, semicolon, param_text = rest[sent_by_start:].partition(";")
    # COLON is SWS ":" SWS here, unlike inside a URI.
    host_text, port_text = _split_host_port(sent_by.rstrip(_WS), text, _WS)
    host = _parse_host(host_text, text)
    port = _parse_port(port_text, text) if port_text is not None else None
    params = _parse_header_params(semicolon + param_text, text) if semicolon else {}
    return _message.Via(
        transport=transport,
        host=host,
        port=port,
        params=params,
        protocol=f"{name.upper()}/{version}",
    )


def format_via(via: Via) -> str:
    host = _format_host(via.host)
    sent_by = host if via.port is None else f"{host}:{via.port}"
    return f"{via.protocol}/{via.transport} {sent_by}{_format_header_params(via.params)}"


def parse_cseq(text: str) -> CSeq:
    match = _CSEQ_RE.fullmatch(text.strip(_WS))
    if match is None:
        raise SipSyntaxError(f"bad CSeq {text!r}")
    digits = match.group(1).lstrip("0")
    if len(digits) > 10 or int(digits or "0") > MAX_CSEQ:
        raise SipSyntaxError(f"CSeq number out of range in {text!r}")
    return _message.CSeq(int(digits or "0"), match.group(2))


def parse_delta_seconds(text: str) -> int:
    """Parse ``1*DIGIT``; values past 2**32-1 read as 2**32-1 (the RFC 3261 range of Expires).

    RFC 4475 (scalar02) lets an element treat an overlarge expiry as a default rather than
    an error; capping keeps that decision with the caller, which caps expiries anyway.
    """
    text = text.strip(_WS)
    if not _DIGITS_RE.fullmatch(text):
        raise SipSyntaxError(f"expected a number of seconds, got {text!r}")
    digits = text.lstrip("0")
    if len(digits) > 10:
        return MAX_DELTA_SECONDS
    return min(int(digits or "0"), MAX_DELTA_SECONDS)


def serialize(message: Message) -> bytes:
    """The wire form: start line, headers in order, Content-Length from the body, body."""
    if isinstance(message, _message.Request):
        lines = [f"{message.method} {format_uri(message.uri)} SIP/2.0"]
    elif isinstance(message, _message.Response):
        lines = [f"SIP/2.0 {message.status:03d} {message.reason}"]
    else:
        raise TypeError(f"cannot serialise {type(message).__name__}")
    length = str(len(message.body))
    length_written = False
    for name, value in message.headers:
        if name != "Content-Length":
            lines.append(f"{name}: {value}")
        elif not length_written:
            lines.append(f"Content-Length: {length}")
            length_written = True
    if not length_written:
        lines.append(f"Content-Length: {length}")
    head = "\r\n".join(lines)
    # A CR or LF inside a value would let a header smuggle in further headers.
    breaks = len(lines) - 1
    if head.count("\r") != breaks or head.count("\n") != breaks:
        raise SipSyntaxError("CR or LF inside a start line or header value")
    return head.encode("utf-8") + b"\r\n\r\n" + message.body
