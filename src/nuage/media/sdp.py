"""SDP (RFC 8866) model, parser and serializer, with the offer/answer (RFC 3264) helpers the
B2BUA needs to anchor media on its own relay.

The parser is strict about what it can check without guessing: ``v=0``, ``o=`` and ``s=``
first in that order, one known type letter per line, well-formed ``o=``, ``c=``, ``b=``,
``t=``, ``m=`` and the attributes Nuage reads (rtpmap, rtcp, ptime, direction). It is
tolerant where real phones differ: CRLF or bare LF, trailing blank lines, and any order
of the optional lines within a section (they are written back in the RFC's order).
Unknown attributes are kept, in order, so a description round-trips.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

# Far above any real offer (a WebRTC offer with video and many candidates is ~10 KiB);
# the limit bounds the parser's work on hostile input.
MAX_SDP_SIZE = 64 * 1024

# The same few addresses (ours and the peers') come back on every call set-up, and
# ipaddress parses slowly; its address objects are immutable, so they can be shared.
_ip_address = functools.lru_cache(maxsize=1024)(ipaddress.ip_address)

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_DIGITS = re.compile(r"[0-9]+")
_REAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_ENCODING = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")

# The static payload types of RFC 3551 that phones still offer without an a=rtpmap line.
_STATIC_PAYLOADS: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    18: ("G729", 8000, 1),
}

# ICE attributes describe the remote's own addresses; once media is anchored they would
# invite the other party to bypass the relay (or fail connectivity checks), so anchoring
# drops them.
_ICE_ATTRIBUTES = frozenset(
    {
        "candidate",
        "end-of-candidates",
        "ice-lite",
        "ice-mismatch",
        "ice-options",
        "ice-pwd",
        "ice-ufrag",
        "remote-candidates",
    }
)


class SdpError(ValueError):
    """A session description that cannot be parsed or is not valid SDP."""


class Direction(enum.StrEnum):
    """The media direction attribute, from the point of view of the description's author."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, *, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE


_DIRECTIONS = frozenset(direction.value for direction in Direction)


def answer_direction(offer: Direction, local: Direction = Direction.SENDRECV) -> Direction:
    """The direction to answer with (RFC 3264 §6.1): send only what the offerer will receive,
    receive only what it will send, and never more than ``local`` allows."""
    return Direction.from_flags(
        sends=offer.receives and local.sends, receives=offer.sends and local.receives
    )


@dataclass(slots=True)
class Origin:
    """``o=``. ``version`` is what an updated offer must increase (RFC 3264 §8)."""

    username: str
    session_id: str
    version: int
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=``. ``address`` may carry a multicast ``/ttl`` suffix, kept as written."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<type>:<kbit/s or bit/s, per the type>``."""

    type: str
    value: int


@dataclass(slots=True)
class Timing:
    """``t=`` and the ``r=`` lines after it (kept verbatim: Nuage never schedules sessions)."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=name`` (a flag, ``value`` None) or ``a=name:value``."""

    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class RtpMap:
    """A payload type's codec: ``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None


@dataclass(frozen=True, slots=True)
class Rtcp:
    """``a=rtcp`` (RFC 3605): where the author receives RTCP when not on the RTP port + 1."""

    port: int
    connection: Connection | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a media section's author receives RTP and RTCP."""

    host: str
    rtp_port: int
    rtcp_port: int


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section and the lines under it."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    title: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        """Port 0: a stream refused in an answer or disabled in an offer (RFC 3264 §6)."""
        return self.port == 0

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=name:value``; None when absent or a flag."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value
        return None

    def has_attribute(self, name: str) -> bool:
        return any(attribute.name == name for attribute in self.attributes)

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """Codecs by payload type: explicit ``a=rtpmap`` lines, and the static payload
        types of RFC 3551 listed in ``formats`` without one."""
        maps: dict[int, RtpMap] = {}
        for attribute in self.attributes:
            if attribute.name == "rtpmap":
                rtpmap = _parse_rtpmap(attribute.value)
                maps[rtpmap.payload_type] = rtpmap
        for fmt in self.formats:
            if fmt.isdigit() and int(fmt) not in maps and int(fmt) in _STATIC_PAYLOADS:
                encoding, rate, channels = _STATIC_PAYLOADS[int(fmt)]
                maps[int(fmt)] = RtpMap(int(fmt), encoding, rate, channels)
        return maps

    @property
    def codecs(self) -> list[RtpMap]:
        """The offered or accepted codecs in preference order (the order of ``formats``);
        a dynamic payload type without an rtpmap names no codec and is skipped."""
        maps = self.rtpmaps
        return [maps[int(fmt)] for fmt in self.formats if fmt.isdigit() and int(fmt) in maps]

    def fmtp(self, payload_type: int) -> str | None:
        """The format parameters of ``a=fmtp:<payload_type> <parameters>``."""
        prefix = f"{payload_type} "
        for attribute in self.attributes:
            if attribute.name == "fmtp" and attribute.value is not None:
                if attribute.value.startswith(prefix):
                    return attribute.value[len(prefix) :].strip()
                if attribute.value == str(payload_type):
                    return ""
        return None

    @property
    def ptime(self) -> float | None:
        """``a=ptime`` in milliseconds (RFC 8866 allows a decimal value)."""
        value = self.attribute("ptime")
        return None if value is None else _parse_ptime(value)

    @property
    def rtcp(self) -> Rtcp | None:
        value = self.attribute("rtcp")
        return None if value is None else _parse_rtcp(value)

    @property
    def direction(self) -> Direction | None:
        """This section's own direction attribute, None when absent (see
        ``SessionDescription.media_direction`` for the effective one)."""
        return _direction_of(self.attributes)

    @direction.setter
    def direction(self, value: Direction | None) -> None:
        self.attributes = _with_direction(self.attributes, value)


@dataclass(slots=True)
class SessionDescription:
    """A whole session description. ``media`` keeps the order of the ``m=`` lines, which
    offer/answer relies on (RFC 3264 §6: the answer has as many sections, in order)."""

    origin: Origin
    session_name: str = "-"
    version: int = 0
    info: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=lambda: [Timing()])
    timezones: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute, the default of every media section."""
        return _direction_of(self.attributes)

    def media_direction(self, media: MediaDescription) -> Direction:
        """The effective direction of ``media``: its own attribute, else the session's,
        else sendrecv (RFC 3264 §5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def remote_endpoints(self) -> list[Endpoint | None]:
        """Per media section, where its author receives RTP and RTCP; None for a rejected
        section (port 0). The address is the section's ``c=``, else the session's; the RTCP
        port is ``a=rtcp``'s, else the RTP port + 1 (RFC 3550 §11)."""
        endpoints: list[Endpoint | None] = []
        for media in self.media:
            if media.rejected:
                endpoints.append(None)
                continue
            connection = media.connection or self.connection
            if connection is None:
                raise SdpError(f"m={media.media} section has no c= line")
            host = connection.address.split("/", 1)[0]
            # An a=rtcp address other than the RTP one is rare and the relay sends both
            # to one host, so only its port is used.
            rtcp = media.rtcp
            rtcp_port = media.port + 1 if rtcp is None else rtcp.port
            endpoints.append(Endpoint(host, media.port, rtcp_port))
        return endpoints

    def serialize(self) -> str:
        """The description as SDP text with CRLF line ends."""
        lines = [
            f"v={self.version}",
            _origin_line(self.origin),
            f"s={self.session_name}",
        ]
        if self.info is not None:
            lines.append(f"i={self.info}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        lines.extend(f"e={email}" for email in self.emails)
        lines.extend(f"p={phone}" for phone in self.phones)
        if self.connection is not None:
            lines.append(_connection_line(self.connection))
        lines.extend(f"b={b.type}:{b.value}" for b in self.bandwidths)
        for timing in self.timings:
            lines.append(f"t={timing.start} {timing.stop}")
            lines.extend(f"r={repeat}" for repeat in timing.repeats)
        if self.timezones is not None:
            lines.append(f"z={self.timezones}")
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines.extend(_attribute_line(a) for a in self.attributes)
        for media in self.media:
            port = media.port if media.port_count is None else f"{media.port}/{media.port_count}"
            lines.append(f"m={media.media} {port} {media.proto} {' '.join(media.formats)}")
            if media.title is not None:
                lines.append(f"i={media.title}")
            if media.connection is not None:
                lines.append(_connection_line(media.connection))
            lines.extend(f"b={b.type}:{b.value}" for b in media.bandwidths)
            if media.key is not None:
                lines.append(f"k={media.key}")
            lines.extend(_attribute_line(a) for a in media.attributes)
        return "\r\n".join(lines) + "\r\n"

    def encode(self) -> bytes:
        return self.serialize().encode("utf-8")


def parse(data: bytes | str) -> SessionDescription:
    """Parse a session description (a SIP body). Raises ``SdpError`` on anything invalid."""
    if len(data) > MAX_SDP_SIZE:
        raise SdpError(f"session description larger than {MAX_SDP_SIZE} bytes")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError("session description is not UTF-8") from exc
    else:
        text = data
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise SdpError("empty session description")
    parsed: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=1):
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"line {number} is not <type>=<value>: {line[:40]!r}")
        if "\0" in line or "\r" in line:
            raise SdpError(f"line {number} contains a NUL or a bare CR")
        parsed.append((line[0], line[2:]))
    return _Parser(parsed).session()


def copy_description(description: SessionDescription) -> SessionDescription:
    """An independent copy: the mutable parts are copied, the immutable lines shared
    (deepcopy costs several times more, on every call set-up)."""
    return replace(
        description,
        origin=replace(description.origin),
        emails=list(description.emails),
        phones=list(description.phones),
        bandwidths=list(description.bandwidths),
        timings=[replace(t, repeats=list(t.repeats)) for t in description.timings],
        attributes=list(description.attributes),
        media=[
            replace(
                m,
                formats=list(m.formats),
                bandwidths=list(m.bandwidths),
                attributes=list(m.attributes),
            )
            for m in description.media
        ],
    )


def anchor(
    description: SessionDescription, address: str, ports: Sequence[int]
) -> SessionDescription:
    """A copy of ``description`` whose media all flow through ``address``: the session and
    section connection addresses and ``o=`` address become ``address``, each section's port
    becomes ``ports[i]`` (its RTCP port + 1); 0 in ``ports`` rejects that section. Sections
    already rejected stay so. Codecs and other attributes are kept; ICE attributes are
    dropped (they name the original party's addresses)."""
    if len(ports) != len(description.media):
        raise ValueError(f"{len(ports)} ports for {len(description.media)} media sections")
    try:
        ip = _ip_address(address)
    except ValueError:
        raise ValueError(f"not an IP address: {address!r}") from None
    addrtype = "IP4" if ip.version == 4 else "IP6"
    result = copy_description(description)
    result.origin.address = str(ip)
    result.origin.addrtype = addrtype
    result.connection = Connection(str(ip), addrtype)
    result.attributes = [a for a in result.attributes if a.name not in _ICE_ATTRIBUTES]
    for media, port in zip(result.media, ports, strict=True):
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid port {port}")
        if media.rejected:
            continue
        media.port = port
        # One relay port pair per section: a port count (layered coding) cannot be honoured.
        media.port_count = None
        if media.connection is not None:
            media.connection = Connection(str(ip), addrtype)
        attributes: list[Attribute] = []
        for attribute in media.attributes:
            if attribute.name in _ICE_ATTRIBUTES:
                continue
            if attribute.name == "rtcp":
                attributes.append(Attribute("rtcp", f"{port + 1} IN {addrtype} {ip}"))
            else:
                attributes.append(attribute)
        media.attributes = attributes
    return result


def bump_version(description: SessionDescription) -> SessionDescription:
    """A copy with the ``o=`` version increased, as a changed re-offer requires."""
    result = copy_description(description)
    result.origin.version += 1
    return result


class _Parser:
    def __init__(self, lines: list[tuple[str, str]]) -> None:
        self._lines = lines
        self._position = 0

    def _next(self) -> tuple[str, str] | None:
        if self._position >= len(self._lines):
            return None
        line = self._lines[self._position]
        self._position += 1
        return line

    def _expect(self, kind: str) -> str:
        line = self._next()
        if line is None or line[0] != kind:
            found = "end of description" if line is None else f"{line[0]}="
            raise SdpError(f"expected {kind}= line, found {found}")
        return line[1]

    def session(self) -> SessionDescription:
        if self._expect("v") != "0":
            raise SdpError("unsupported SDP version (v= must be 0)")
        origin = _parse_origin(self._expect("o"))
        session = SessionDescription(origin=origin, session_name=self._expect("s"), timings=[])
        seen: set[str] = set()
        while (line := self._next()) is not None:
            kind, value = line
            if kind == "m":
                self._position -= 1
                break
            if kind in "iuczk" and kind in seen:
                raise SdpError(f"more than one session-level {kind}= line")
            seen.add(kind)
            if kind == "i":
                session.info = value
            elif kind == "u":
                session.uri = value
            elif kind == "e":
                session.emails.append(value)
            elif kind == "p":
                session.phones.append(value)
            elif kind == "c":
                session.connection = _parse_connection(value)
            elif kind == "b":
                session.bandwidths.append(_parse_bandwidth(value))
            elif kind == "t":
                session.timings.append(_parse_timing(value))
            elif kind == "r":
                if not session.timings:
                    raise SdpError("r= line before any t= line")
                session.timings[-1].repeats.append(value)
            elif kind == "z":
                session.timezones = value
            elif kind == "k":
                session.key = value
            elif kind == "a":
                session.attributes.append(_parse_attribute(value))
            else:
                raise SdpError(f"unknown or misplaced session-level line {kind}=")
        if not session.timings:
            raise SdpError("no t= line")
        _check_attributes(session.attributes)
        while (line := self._next()) is not None:
            session.media.append(self._media(line[1]))
        for media in session.media:
            if media.connection is None and session.connection is None and not media.rejected:
                raise SdpError(f"m={media.media} section has no c= line and no session c=")
        return session

    def _media(self, value: str) -> MediaDescription:
        media = _parse_media_line(value)
        seen: set[str] = set()
        while (line := self._next()) is not None:
            kind, value = line
            if kind == "m":
                self._position -= 1
                break
            if kind in "ick" and kind in seen:
                raise SdpError(f"more than one {kind}= line in m={media.media} section")
            seen.add(kind)
            if kind == "i":
                media.title = value
            elif kind == "c":
                media.connection = _parse_connection(value)
            elif kind == "b":
                media.bandwidths.append(_parse_bandwidth(value))
            elif kind == "k":
                media.key = value
            elif kind == "a":
                media.attributes.append(_parse_attribute(value))
            else:
                raise SdpError(f"unknown or misplaced media-level line {kind}=")
        _check_attributes(media.attributes)
        return media


def _parse_origin(value: str) -> Origin:
    fields = value.split(" ")
    if len(fields) != 6 or not all(fields):
        raise SdpError(f"o= needs 6 fields: {value[:60]!r}")
    username, session_id, version, nettype, addrtype, address = fields
    if not _DIGITS.fullmatch(session_id) or not _DIGITS.fullmatch(version):
        raise SdpError("o= session id and version must be numbers")
    _check_address(nettype, addrtype, address, "o=")
    return Origin(username, session_id, int(version), address, addrtype, nettype)


def _parse_connection(value: str) -> Connection:
    fields = value.split(" ")
    if len(fields) != 3 or not all(fields):
        raise SdpError(f"c= needs 3 fields: {value[:60]!r}")
    nettype, addrtype, address = fields
    _check_address(nettype, addrtype, address, "c=")
    return Connection(address, addrtype, nettype)


def _check_address(nettype: str, addrtype: str, address: str, where: str) -> None:
    if nettype != "IN":
        raise SdpError(f"{where} network type must be IN")
    if addrtype not in ("IP4", "IP6"):
        raise SdpError(f"{where} address type must be IP4 or IP6")
    host = address.split("/", 1)[0]
    # An FQDN is valid SDP; anything else that claims to be an IP literal must be one.
    looks_numeric = host.replace(".", "").isdigit() or ":" in host
    if looks_numeric:
        try:
            ip = _ip_address(host)
        except ValueError:
            raise SdpError(f"{where} invalid address {host!r}") from None
        if (ip.version == 4) != (addrtype == "IP4"):
            raise SdpError(f"{where} address {host!r} is not {addrtype}")
    elif not _TOKEN.fullmatch(host):
        raise SdpError(f"{where} invalid address {host[:60]!r}")


def _parse_bandwidth(value: str) -> Bandwidth:
    kind, _, amount = value.partition(":")
    if not _TOKEN.fullmatch(kind) or not _DIGITS.fullmatch(amount):
        raise SdpError(f"invalid b= line: {value[:60]!r}")
    return Bandwidth(kind, int(amount))


def _parse_timing(value: str) -> Timing:
    fields = value.split(" ")
    if len(fields) != 2 or not all(_DIGITS.fullmatch(f) for f in fields):
        raise SdpError(f"invalid t= line: {value[:60]!r}")
    return Timing(int(fields[0]), int(fields[1]))


def _parse_media_line(value: str) -> MediaDescription:
    fields = value.split(" ")
    if len(fields) < 4 or not all(fields):
        raise SdpError(f"m= needs media, port, proto and formats: {value[:60]!r}")
    media, port_text, proto, *formats = fields
    if not _TOKEN.fullmatch(media):
        raise SdpError(f"invalid m= media {media[:20]!r}")
    port_text, slash, count_text = port_text.partition("/")
    if not _DIGITS.fullmatch(port_text) or int(port_text) > 65535:
        raise SdpError(f"invalid m= port {port_text[:20]!r}")
    port_count = None
    if slash:
        if not _DIGITS.fullmatch(count_text) or int(count_text) == 0:
            raise SdpError(f"invalid m= port count {count_text[:20]!r}")
        port_count = int(count_text)
    if not all(_TOKEN.fullmatch(part) for part in proto.split("/")):
        raise SdpError(f"invalid m= proto {proto[:40]!r}")
    is_rtp = "RTP/" in proto
    for fmt in formats:
        if is_rtp and not (_DIGITS.fullmatch(fmt) and int(fmt) <= 127):
            raise SdpError(f"invalid RTP payload type {fmt[:20]!r}")
        if not is_rtp and not _TOKEN.fullmatch(fmt):
            raise SdpError(f"invalid m= format {fmt[:20]!r}")
    return MediaDescription(media, int(port_text), proto, formats, port_count)


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise SdpError(f"invalid attribute name {name[:40]!r}")
    return Attribute(name, rest if colon else None)


def _check_attributes(attributes: list[Attribute]) -> None:
    """Validate the attributes Nuage interprets, so a bad one fails at parse time."""
    for attribute in attributes:
        if attribute.name == "rtpmap":
            _parse_rtpmap(attribute.value)
        elif attribute.name == "rtcp":
            _parse_rtcp(attribute.value or "")
        elif attribute.name == "ptime":
            _parse_ptime(attribute.value or "")
        elif attribute.name in _DIRECTIONS and attribute.value is not None:
            raise SdpError(f"a={attribute.name} takes no value")
    _direction_of(attributes)


def _parse_rtpmap(value: str | None) -> RtpMap:
    payload, _, codec = (value or "").partition(" ")
    parts = codec.strip().split("/")
    if (
        not _DIGITS.fullmatch(payload)
        or int(payload) > 127
        or len(parts) not in (2, 3)
        or not _ENCODING.fullmatch(parts[0])
        or not all(_DIGITS.fullmatch(p) for p in parts[1:])
    ):
        raise SdpError(f"invalid a=rtpmap:{(value or '')[:60]}")
    channels = int(parts[2]) if len(parts) == 3 else None
    return RtpMap(int(payload), parts[0], int(parts[1]), channels)


def _parse_rtcp(value: str) -> Rtcp:
    fields = value.split(" ")
    if not _DIGITS.fullmatch(fields[0]) or not 0 < int(fields[0]) <= 65535:
        raise SdpError(f"invalid a=rtcp:{value[:60]}")
    if len(fields) == 1:
        return Rtcp(int(fields[0]))
    if len(fields) != 4:
        raise SdpError(f"invalid a=rtcp:{value[:60]}")
    return Rtcp(int(fields[0]), _parse_connection(" ".join(fields[1:])))


def _parse_ptime(value: str) -> float:
    if not _REAL.fullmatch(value) or float(value) == 0:
        raise SdpError(f"invalid a=ptime:{value[:20]}")
    return float(value)


def _direction_of(attributes: list[Attribute]) -> Direction | None:
    found = [Direction(a.name) for a in attributes if a.name in _DIRECTIONS]
    if len(found) > 1:
        raise SdpError("more than one direction attribute")
    return found[0] if found else None


def _with_direction(attributes: list[Attribute], value: Direction | None) -> list[Attribute]:
    """Replace the direction attribute in place (appended when there was none)."""
    result: list[Attribute] = []
    placed = value is None
    for attribute in attributes:
        if attribute.name not in _DIRECTIONS:
            result.append(attribute)
        elif not placed:
            result.append(Attribute(str(value)))
            placed = True
    if not placed:
        result.append(Attribute(str(value)))
    return result


def _origin_line(origin: Origin) -> str:
    return (
        f"o={origin.username} {origin.session_id} {origin.version}"
        f" {origin.nettype} {origin.addrtype} {origin.address}"
    )


def _connection_line(connection: Connection) -> str:
    return f"c={connection.nettype} {connection.addrtype} {connection.address}"


def _attribute_line(attribute: Attribute) -> str:
    if attribute.value is None:
        return f"a={attribute.name}"
    return f"a={attribute.name}:{attribute.value}"
