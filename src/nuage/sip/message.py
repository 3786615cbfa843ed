"""The SIP message model (RFC 3261 section 7): requests, responses, headers and header values.

Values are kept as the text that arrived and parsed on demand through the typed accessors;
the grammar lives in :mod:`nuage.sip.grammar`. Serialising a message (``bytes(msg)``) always
recomputes Content-Length from the body.

The accessors parse a header once and keep the result in the message's :class:`Headers`
until that header changes, so the objects they return are shared between calls: treat
them as read-only (copy one before changing it, or build a new value and set the header).
The lists they return are fresh copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast

from nuage.sip import grammar

# Compact forms (RFC 3261 section 7.3.3 and the event/refer extensions).
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
}

# Canonical spelling of well-known header names; unknown names keep the case they arrived in.
_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "MIME-Version",
        "Organization",
        "P-Asserted-Identity",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Replaces",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
}

# Headers whose value is a comma-separated list of elements (RFC 3261 section 7.3.1).
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Call-Info",
        "Contact",
        "Content-Encoding",
        "Content-Language",
        "Error-Info",
        "In-Reply-To",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Require",
        "Route",
        "Supported",
        "Unsupported",
        "Via",
        "Warning",
    }
)


# The spellings seen on the wire nearly always: canonical, lower case and compact forms.
_FAST_NAMES: dict[str, str] = {
    **{name: name for name in _CANONICAL.values()},
    **_CANONICAL,
    **COMPACT_FORMS,
    **{compact.upper(): name for compact, name in COMPACT_FORMS.items()},
}


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name, compact forms expanded."""
    fast = _FAST_NAMES.get(name)
    if fast is not None:
        return fast
    lowered = name.lower()
    if len(lowered) == 1 and lowered in COMPACT_FORMS:
        return COMPACT_FORMS[lowered]
    return _CANONICAL.get(lowered, name)


def _lookup_key(name: str) -> tuple[str, str | None]:
    """The canonical name, and for a name not known here its lower case to match against.

    Unknown names keep the case they arrived in, so they are compared case-insensitively
    (RFC 3261 section 7.3.1); known names are canonical and compare as they are.
    """
    fast = _FAST_NAMES.get(name)
    if fast is not None:
        return fast, None
    canonical = canonical_name(name)
    lowered = canonical.lower()
    return canonical, None if lowered in _CANONICAL else lowered


_T = TypeVar("_T")


def _matches(existing: str, name: str, folded: str | None) -> bool:
    return existing == name or (folded is not None and existing.lower() == folded)


class Headers:
    """An ordered multimap of header name to raw value, with case-insensitive look-up.

    Names are stored canonicalised. A list header may hold several elements in one
    value ("Via: a, b"); :meth:`get_all` splits them, :meth:`values` does not.

    It also holds what the typed accessors of :class:`Message` parsed, by canonical header
    name; every change to a header drops what was parsed from it.
    """

    __slots__ = ("_items", "_parsed")
    # Equal by content and mutable, hence unhashable.
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]
        self._parsed: dict[str, object] = {}

    @classmethod
    def from_canonical(
        cls, items: list[tuple[str, str]], parsed: dict[str, object] | None = None
    ) -> Headers:
        """Adopt a list whose names are already canonical (the parser's path; not copied).

        ``parsed`` (adopted too) holds what the typed accessors would make of some headers,
        by canonical name: exactly what parsing their text gives.
        """
        headers = cls()
        headers._items = items
        if parsed is not None:
            headers._parsed = parsed
        return headers

    def _recall(self, name: str, parse: Callable[[], _T]) -> _T:
        """What ``parse`` makes of header ``name`` (canonical), parsed at most once per change."""
        parsed = self._parsed
        if name in parsed:
            return cast(_T, parsed[name])
        value = parse()
        parsed[name] = value
        return value

    def _remember(self, name: str, value: object) -> None:
        """Record what header ``name`` (canonical) parses to, as :meth:`_recall` would.

        For code that has just parsed or built that header itself (the parser, a response
        echoing its request's headers): it must be exactly what parsing the text gives.
        """
        self._parsed[name] = value

    def add(self, name: str, value: str) -> None:
        name = canonical_name(name)
        self._items.append((name, value))
        self._parsed.pop(name, None)

    def prepend(self, name: str, value: str) -> None:
        """Insert before any header of the same name (a new top Via or Record-Route)."""
        name, folded = _lookup_key(name)
        self._parsed.pop(name, None)
        for index, (existing, _) in enumerate(self._items):
            if existing == name or (folded is not None and existing.lower() == folded):
                self._items.insert(index, (name, value))
                return
        self._items.append((name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every header of this name with one value (in the place of the first)."""
        name, folded = _lookup_key(name)
        self._parsed.pop(name, None)
        items = self._items
        for index, (existing, _) in enumerate(items):
            if existing == name or (folded is not None and existing.lower() == folded):
                items[index] = (name, value)
                # Usually there is no second one: only the tail is filtered, and only if needed.
                later = items[index + 1 :]
                kept = [item for item in later if not _matches(item[0], name, folded)]
                if len(kept) != len(later):
                    self._items = items[: index + 1] + kept
                return
        items.append((name, value))

    def replace_first(self, name: str, value: str) -> None:
        """Replace the first header of this name, keeping any others; add it if absent."""
        name, folded = _lookup_key(name)
        self._parsed.pop(name, None)
        for index, (existing, _) in enumerate(self._items):
            if existing == name or (folded is not None and existing.lower() == folded):
                self._items[index] = (name, value)
                return
        self._items.append((name, value))

    def remove(self, name: str) -> None:
        name, folded = _lookup_key(name)
        self._parsed.pop(name, None)
        self._items = [item for item in self._items if not _matches(item[0], name, folded)]

    def get(self, name: str) -> str | None:
        """The first raw value of a header, or None."""
        name, folded = _lookup_key(name)
        if folded is None:
            # A known name is stored canonical: plain equality, on the path of every message.
            for existing, value in self._items:
                if existing == name:
                    return value
            return None
        for existing, value in self._items:
            if existing == name or existing.lower() == folded:
                return value
        return None

    def values(self, name: str) -> list[str]:
        """Every raw value of a header, one per header line."""
        name, folded = _lookup_key(name)
        if folded is None:
            return [value for existing, value in self._items if existing == name]
        return [value for existing, value in self._items if _matches(existing, name, folded)]

    def get_all(self, name: str) -> list[str]:
        """Every element of a header, comma-separated list values split (quotes respected)."""
        name = canonical_name(name)
        raw = self.values(name)
        if name not in LIST_HEADERS:
            return raw
        return [element for value in raw for element in grammar.split_comma_list(value)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        copied = Headers()
        copied._items = list(self._items)
        # Parsed values are read-only by contract, so the copy may share them.
        copied._parsed = dict(self._parsed)
        return copied


@dataclass(slots=True)
class URI:
    """A SIP, SIPS or tel URI (RFC 3261 section 19.1, RFC 3966). Other schemes keep ``opaque``.

    ``host`` holds an IPv6 address without brackets; ``str()`` adds them back. ``user`` and
    ``password`` are unescaped; ``str()`` escapes what needs escaping. Parameter names are
    lowercased; a parameter without value maps to None.
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> URI:
        return grammar.parse_uri(text)

    def __str__(self) -> str:
        return grammar.format_uri(self)

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(slots=True)
class Address:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route, ...)."""

    uri: URI
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    wildcard: bool = False  # "Contact: *"

    @classmethod
    def parse(cls, text: str) -> Address:
        return grammar.parse_address(text)

    def __str__(self) -> str:
        return grammar.format_address(self)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")


@dataclass(slots=True)
class Via:
    """One Via element (RFC 3261 section 20.42), with rport (RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        return grammar.parse_via(text)

    def __str__(self) -> str:
        return grammar.format_via(self)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")


@dataclass(slots=True, frozen=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        return grammar.parse_cseq(text)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


class Message:
    """What requests and responses share: headers, a body and typed header accessors."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise grammar.SipSyntaxError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self.headers._recall("Call-ID", lambda: self._required("Call-ID").strip())

    @property
    def cseq(self) -> CSeq:
        return self.headers._recall("CSeq", lambda: CSeq.parse(self._required("CSeq")))

    @property
    def from_(self) -> Address:
        return self.headers._recall("From", lambda: Address.parse(self._required("From")))

    @property
    def to(self) -> Address:
        return self.headers._recall("To", lambda: Address.parse(self._required("To")))

    def _list(self, name: str, parse: Callable[[str], _T]) -> list[_T]:
        headers = self.headers
        return headers._recall(name, lambda: [parse(element) for element in headers.get_all(name)])

    @property
    def vias(self) -> list[Via]:
        return list(self._list("Via", Via.parse))

    @property
    def top_via(self) -> Via:
        try:
            vias = self._list("Via", Via.parse)
        except grammar.SipSyntaxError:
            # A bad Via further down must not hide a good top one.
            return Via.parse(self.headers.get_all("Via")[0])
        if not vias:
            raise grammar.SipSyntaxError("missing Via header")
        return vias[0]

    @property
    def contacts(self) -> list[Address]:
        return list(self._list("Contact", Address.parse))

    @property
    def routes(self) -> list[Address]:
        return list(self._list("Route", Address.parse))

    @property
    def record_routes(self) -> list[Address]:
        return list(self._list("Record-Route", Address.parse))

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else None

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        return grammar.parse_delta_seconds(value) if value is not None else None

    def to_bytes(self) -> bytes:
        return grammar.serialize(self)

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    __slots__ = ("method", "uri")
    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self, method: str, uri: URI, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return grammar.parse_delta_seconds(value) if value is not None else None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Request)
            and self.method == other.method
            and self.uri == other.uri
            and self.headers == other.headers
            and self.body == other.body
        )


class Response(Message):
    __slots__ = ("reason", "status")
    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self, status: int, reason: str, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Response)
            and self.status == other.status
            and self.reason == other.reason
            and self.headers == other.headers
            and self.body == other.body
        )


REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
}


_ECHOED = ("Via", "From", "To", "Call-ID", "CSeq")


def make_response(request: Request, status: int, reason: str | None = None) -> Response:
    """A response to ``request`` per RFC 3261 section 8.2.6: Via, From, To, Call-ID, CSeq copied.

    The To tag is left to the caller (a UAS adds its own for anything but 100).
    """
    original = request.headers
    # Known names are stored canonical, as these are.
    items = [(name, value) for name in _ECHOED for (n, value) in original._items if n == name]
    # Same text, same parse: the response's accessors need not parse it again.
    parsed = original._parsed
    headers = Headers.from_canonical(
        items, {name: parsed[name] for name in _ECHOED if name in parsed}
    )
    if status == 100 and "Timestamp" in request.headers:
        headers.add("Timestamp", request.headers.get("Timestamp") or "")
    return Response(status, reason or REASON_PHRASES.get(status, ""), headers)
