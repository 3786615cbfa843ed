"""Parse one SIP message from a datagram or from a stream message cut out by the framer.

Sans-I/O: bytes in, a :class:`Request` or :class:`Response` out, or :class:`MessageRejected`
saying which status to answer with (RFC 3261 sections 7, 8.2 and 18.3; RFC 4475). Everything
a server relies on is validated here (Via, From, To, Call-ID, CSeq, Contact, Route,
Record-Route, Max-Forwards, Expires, Content-Length), so that the typed accessors of a
message this module returned do not raise.
"""

from __future__ import annotations

import re
from typing import cast

from nuage.sip.grammar import (
    TOKEN_RE,
    SipSyntaxError,
    parse_address,
    parse_cseq,
    parse_delta_seconds,
    parse_uri,
    parse_via,
    split_comma_list,
)
from nuage.sip.message import (
    _FAST_NAMES,
    URI,
    Address,
    CSeq,
    Headers,
    Request,
    Response,
    Via,
    canonical_name,
)

_MAX_REASON = 120


class MessageRejected(SipSyntaxError):
    """A message that cannot be accepted.

    ``status`` is the response to send (400, 413, 416, 501 or 505) and ``reason`` a reason
    phrase naming the problem. ``request`` is the request as far as it was parsed when it
    has the Via, From, To, Call-ID and CSeq headers that ``make_response`` echoes: the
    transport answers it statelessly to the source address (the values are the raw text
    and may themselves be malformed). With ``request`` None the message is dropped.
    """

    def __init__(self, reason: str, status: int = 400, request: Request | None = None) -> None:
        # The reason goes on the wire as a reason phrase: keep it a phrase.
        if len(reason) > _MAX_REASON:
            reason = reason[: _MAX_REASON - 3] + "..."
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.request = request


_WS = " \t"
# RFC 3261 section 7.1: SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT, case-insensitive.
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
# Call-ID = word ["@" word] (RFC 3261 section 25.1).
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(rf"{_WORD}(?:@{_WORD})?")
_DIGITS_RE = re.compile(r"[0-9]+")
# Headers that take exactly one value (RFC 4475 multi01, mcl01).
_SINGLE = frozenset(
    {"To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type", "Expires"}
)
_ADDRESS_LISTS = frozenset({"Contact", "Route", "Record-Route"})
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
# The methods of RFC 3261 and the extensions Nuage speaks; another method with a CSeq that
# does not match earns 501 rather than 400 (RFC 4475 mismatch02).
_KNOWN_METHODS = frozenset(
    {
        "ACK",
        "BYE",
        "CANCEL",
        "INFO",
        "INVITE",
        "MESSAGE",
        "NOTIFY",
        "OPTIONS",
        "PRACK",
        "PUBLISH",
        "REFER",
        "REGISTER",
        "SUBSCRIBE",
        "UPDATE",
    }
)
_SIP_SCHEMES = frozenset({"sip", "sips", "tel"})


def parse_message(
    data: bytes, *, max_size: int = 65536, max_headers: int = 256, whole: bool = False
) -> Request | Response:
    """Parse one message. Bytes after the Content-Length body are ignored (RFC 3261 18.3).

    Without Content-Length the body is the rest of ``data`` (a datagram; the stream framer
    always delivers the exact message). ``whole``: ``data`` is exactly one message (a
    WebSocket message, RFC 7118 section 5.1), so a Content-Length must match its body.
    Raises :class:`MessageRejected`.
    """
    start = 0
    # RFC 3261 section 7.5: CRLFs before the start line are ignored.
    while data.startswith(b"\r\n", start):
        start += 2
    if start == len(data):
        raise MessageRejected("empty message")
    head_end = data.find(b"\r\n\r\n", start, start + max_size + 4)
    if head_end >= 0:
        body_start = head_end + 4
    elif len(data) - start > max_size:
        raise MessageRejected("header section too large", 413)
    elif data.endswith(b"\r\n"):
        # A datagram that ends after its last header line (RFC 4475 baddn) has no body.
        head_end = body_start = len(data) - 2
    else:
        raise MessageRejected("message ends inside the header section")
    try:
        head = data[start:head_end].decode("utf-8")
    except UnicodeDecodeError:
        raise MessageRejected("header section is not valid UTF-8") from None
    lines = head.split("\r\n")
    breaks = len(lines) - 1
    if head.count("\r") != breaks or head.count("\n") != breaks:
        raise MessageRejected("bare CR or LF in the header section")
    if breaks > max_headers:
        raise MessageRejected(f"more than {max_headers} header lines")
    items = _split_headers(lines)
    start_line = lines[0]
    # The message must end by ``limit``, body included.
    limit = start + max_size
    if start_line[:4].upper() == "SIP/":
        return _parse_response(start_line, items, data, body_start, limit, whole=whole)
    return _parse_request(start_line, items, data, body_start, limit, whole=whole)


def _split_headers(lines: list[str]) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for index in range(1, len(lines)):
        line = lines[index]
        if line[:1] in (" ", "\t"):
            # Line folding (RFC 3261 section 7.3.1): the continuation joins with one SP.
            if not items:
                raise MessageRejected("continuation line before the first header")
            name, value = items[-1]
            folded = line.strip(_WS)
            items[-1] = (name, f"{value} {folded}" if value else folded)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(_WS)
        canonical = _FAST_NAMES.get(name)
        if canonical is None:
            if not colon or not TOKEN_RE.fullmatch(name):
                raise MessageRejected(f"malformed header line {line[:40]!r}")
            canonical = canonical_name(name)
        elif not colon:
            raise MessageRejected(f"malformed header line {line[:40]!r}")
        items.append((canonical, value.strip(_WS)))
    return items


def _parse_response(
    start_line: str,
    items: list[tuple[str, str]],
    data: bytes,
    body_start: int,
    limit: int,
    *,
    whole: bool,
) -> Response:
    version, _, rest = start_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version.upper() != "SIP/2.0":
        raise MessageRejected(f"unsupported SIP version {version!r}", 505)
    if len(code) != 3 or not _DIGITS_RE.fullmatch(code) or not 100 <= int(code) <= 699:
        raise MessageRejected(f"bad status code {code[:20]!r}")
    try:
        parsed = _check_headers(items)
        body = _body(items, data, body_start, limit, whole=whole)
    except MessageRejected:
        raise
    except SipSyntaxError as exc:
        raise MessageRejected(str(exc)) from None
    return Response(int(code), reason, Headers.from_canonical(items, parsed), body)


def _parse_request(
    start_line: str,
    items: list[tuple[str, str]],
    data: bytes,
    body_start: int,
    limit: int,
    *,
    whole: bool,
) -> Request:
    words = start_line.split()
    if not words or not TOKEN_RE.fullmatch(words[0]):
        raise MessageRejected(f"bad start line {start_line[:40]!r}")
    method = words[0]
    parts = start_line.split(" ")
    if len(parts) != 3 or not all(parts):
        # Extra or missing SP (RFC 4475 lwsstart, trws, lwsruri): strict, as RFC 4475 allows.
        raise MessageRejected(
            "Request-Line must be Method SP Request-URI SP SIP-Version",
            request=_partial(method, words[1] if len(words) > 1 else "", items),
        )
    uri_text, version = parts[1], parts[2]
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise MessageRejected(
                f"SIP version {version} not supported", 505, _partial(method, uri_text, items)
            )
        raise MessageRejected(
            f"bad SIP version {version[:20]!r}", request=_partial(method, uri_text, items)
        )
    try:
        uri = parse_uri(uri_text)
        if uri.headers:
            raise SipSyntaxError("headers are not allowed in a Request-URI")
        parsed = _check_headers(items)
    except SipSyntaxError as exc:
        raise MessageRejected(str(exc), request=_partial(method, uri_text, items)) from None
    cseq_method = cast(CSeq, parsed["CSeq"]).method
    if cseq_method != method:
        raise MessageRejected(
            f"CSeq method {cseq_method} does not match {method}",
            400 if method in _KNOWN_METHODS else 501,
            _partial(method, uri_text, items),
        )
    if uri.scheme not in _SIP_SCHEMES:
        raise MessageRejected(
            f"unsupported URI scheme {uri.scheme}",
            416,
            Request(method, uri, Headers.from_canonical(items)),
        )
    try:
        body = _body(items, data, body_start, limit, whole=whole)
    except MessageRejected as exc:
        exc.request = Request(method, uri, Headers.from_canonical(items))
        raise
    return Request(method, uri, Headers.from_canonical(items, parsed), body)


def _partial(method: str, uri_text: str, items: list[tuple[str, str]]) -> Request | None:
    present = {name for name, _ in items}
    if any(name not in present for name in _REQUIRED):
        return None
    try:
        uri = parse_uri(uri_text)
    except SipSyntaxError:
        uri = URI(scheme="", opaque=uri_text)
    return Request(method, uri, Headers.from_canonical(items))


def _check_headers(items: list[tuple[str, str]]) -> dict[str, object]:
    """Validate what later accessors parse; return what they would return, by header name.

    The accessors of :class:`nuage.sip.message.Message` adopt these values rather than
    parse the same text again. Raises SipSyntaxError naming the header.
    """
    single: dict[str, str] = {}
    vias: list[Via] = []
    lists: dict[str, list[Address]] = {name: [] for name in _ADDRESS_LISTS}
    wildcard = False
    name = ""
    try:
        for name, value in items:
            if name in _SINGLE:
                if name in single:
                    raise SipSyntaxError("more than one value")
                single[name] = value
            elif name == "Via":
                for element in split_comma_list(value):
                    vias.append(parse_via(element))
            elif name in _ADDRESS_LISTS:
                addresses = lists[name]
                for element in split_comma_list(value):
                    address = parse_address(element)
                    if address.wildcard:
                        if name != "Contact":
                            raise SipSyntaxError("'*' is not an address")
                        wildcard = True
                    addresses.append(address)
        name = "Contact"
        if wildcard and len(lists["Contact"]) > 1:
            raise SipSyntaxError("'*' must be the only Contact")
        name = "Via"
        if not vias:
            raise SipSyntaxError("missing")
        for name in ("From", "To", "Call-ID", "CSeq"):
            if name not in single:
                raise SipSyntaxError("missing")
        name = "From"
        from_ = parse_address(single["From"])
        if from_.wildcard:
            raise SipSyntaxError("'*' is not an address")
        name = "To"
        to = parse_address(single["To"])
        if to.wildcard:
            raise SipSyntaxError("'*' is not an address")
        name = "CSeq"
        cseq = parse_cseq(single["CSeq"])
        name = "Call-ID"
        call_id = single["Call-ID"]
        if not _CALL_ID_RE.fullmatch(call_id):
            raise SipSyntaxError(f"bad value {call_id[:40]!r}")
        for name in ("Max-Forwards", "Expires"):
            if name in single:
                parse_delta_seconds(single[name])
        name = "Content-Length"
        if name in single and not _DIGITS_RE.fullmatch(single[name]):
            raise SipSyntaxError(f"not a number: {single[name][:20]!r}")
    except SipSyntaxError as exc:
        raise SipSyntaxError(f"{name} header: {exc}") from None
    # Call-ID matched a pattern without whitespace: it is its own stripped form.
    return {"Via": vias, "From": from_, "To": to, "CSeq": cseq, "Call-ID": call_id, **lists}


def _body(
    items: list[tuple[str, str]], data: bytes, body_start: int, limit: int, *, whole: bool
) -> bytes:
    length_text = next((value for name, value in items if name == "Content-Length"), None)
    if length_text is None:
        end = len(data)
    else:
        # Digits checked by _check_headers; an absurd length cannot fit a datagram anyway.
        length = int(length_text) if len(length_text) <= 12 else len(data) + 1
        end = body_start + length
        if end > len(data):
            raise MessageRejected("body shorter than Content-Length")
        if whole and end != len(data):
            raise MessageRejected("body longer than Content-Length")
    if end > limit:
        raise MessageRejected("message too large", 413)
    return data[body_start:end]
