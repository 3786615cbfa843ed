"""The server's side of ICE as an ICE-lite agent (RFC 8445 section 2.5): browsers, full
agents, send STUN Binding requests (connectivity checks) to our one host candidate; we
answer those that carry our credentials, and take the address of the one the browser
nominates (USE-CANDIDATE) as where its media goes. We never send checks ourselves.

Sans-I/O: ``IceLiteResponder.handle`` takes a datagram and its source and returns the
response to send back (or None), without touching a socket. STUN framing and integrity
as RFC 8489 says: MESSAGE-INTEGRITY (HMAC-SHA1 keyed with our ice-pwd) and FINGERPRINT
(CRC-32 xor 0x5354554E) on every response.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import string
import struct
import zlib
from dataclasses import dataclass

MAGIC_COOKIE = 0x2112A442
_HEADER = struct.Struct("!HHI12s")
_BINDING_REQUEST = 0x0001
_BINDING_SUCCESS = 0x0101
_BINDING_ERROR = 0x0111

_USERNAME = 0x0006
_MESSAGE_INTEGRITY = 0x0008
_ERROR_CODE = 0x0009
_XOR_MAPPED_ADDRESS = 0x0020
_USE_CANDIDATE = 0x0025
_FINGERPRINT = 0x8028

_FINGERPRINT_XOR = 0x5354554E
_INTEGRITY_LENGTH = 20
_ICE_CHARS = string.ascii_letters + string.digits + "+/"


def is_stun(datagram: bytes) -> bool:
    """Whether a datagram on a media port is STUN (RFC 7983: first byte 0-3, and the
    magic cookie)."""
    return (
        len(datagram) >= _HEADER.size
        and datagram[0] < 4
        and int.from_bytes(datagram[4:8], "big") == MAGIC_COOKIE
    )


def new_credentials() -> tuple[str, str]:
    """A fresh (ice-ufrag, ice-pwd): 8 and 24 ICE characters (RFC 8839: at least 4 and
    22), from the OS's random source."""
    return (
        "".join(secrets.choice(_ICE_CHARS) for _ in range(8)),
        "".join(secrets.choice(_ICE_CHARS) for _ in range(24)),
    )


@dataclass(frozen=True, slots=True)
class StunMessage:
    type: int
    transaction_id: bytes
    # Attributes in order, with the offset of each one's header in the message (the
    # integrity and fingerprint checks cover what precedes them).
    attributes: list[tuple[int, bytes, int]]

    def first(self, attribute: int) -> bytes | None:
        for kind, value, _ in self.attributes:
            if kind == attribute:
                return value
        return None

    def offset(self, attribute: int) -> int | None:
        for kind, _, offset in self.attributes:
            if kind == attribute:
                return offset
        return None


class StunError(ValueError):
    pass


def parse(datagram: bytes) -> StunMessage:
    """A STUN message; StunError for anything malformed."""
    if len(datagram) < _HEADER.size:
        raise StunError("shorter than a STUN header")
    kind, length, cookie, transaction_id = _HEADER.unpack_from(datagram)
    if cookie != MAGIC_COOKIE or kind & 0xC000:
        raise StunError("not STUN")
    if length % 4 or _HEADER.size + length != len(datagram):
        raise StunError("length does not match the datagram")
    attributes: list[tuple[int, bytes, int]] = []
    offset = _HEADER.size
    while offset < len(datagram):
        if offset + 4 > len(datagram):
            raise StunError("truncated attribute")
        attribute, size = struct.unpack_from("!HH", datagram, offset)
        end = offset + 4 + size
        if end > len(datagram):
            raise StunError("attribute runs past the message")
        attributes.append((attribute, datagram[offset + 4 : end], offset))
        offset = end + (-size % 4)
    return StunMessage(kind, transaction_id, attributes)


def _attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def _with_length(message: bytes, length: int) -> bytes:
    """``message`` with its header's length field set to ``length``."""
    return message[:2] + struct.pack("!H", length) + message[4:]


def _fingerprint(message: bytes) -> int:
    return (zlib.crc32(message) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF


def _xor_address(host: str, port: int, transaction_id: bytes) -> bytes:
    ip = ipaddress.ip_address(host.removeprefix("::ffff:") if "." in host else host)
    xport = port ^ (MAGIC_COOKIE >> 16)
    if ip.version == 4:
        xaddress = int(ip) ^ MAGIC_COOKIE
        return struct.pack("!BBHI", 0, 1, xport, xaddress)
    mask = int.from_bytes(struct.pack("!I", MAGIC_COOKIE) + transaction_id, "big")
    return struct.pack("!BBH", 0, 2, xport) + (int(ip) ^ mask).to_bytes(16, "big")


def build(
    kind: int, transaction_id: bytes, attributes: list[tuple[int, bytes]], key: bytes | None
) -> bytes:
    """A STUN message, with MESSAGE-INTEGRITY (when ``key``) and FINGERPRINT last."""
    body = b"".join(_attribute(k, v) for k, v in attributes)
    message = _HEADER.pack(kind, len(body), MAGIC_COOKIE, transaction_id) + body
    if key is not None:
        with_integrity = _with_length(message, len(body) + 4 + _INTEGRITY_LENGTH)
        digest = hmac.new(key, with_integrity, hashlib.sha1).digest()
        message = with_integrity + _attribute(_MESSAGE_INTEGRITY, digest)
    length = len(message) - _HEADER.size + 8
    message = _with_length(message, length)
    return message + _attribute(_FINGERPRINT, struct.pack("!I", _fingerprint(message)))


def integrity_ok(datagram: bytes, message: StunMessage, key: bytes) -> bool:
    """Whether the message's MESSAGE-INTEGRITY is right for ``key`` (RFC 8489 14.5: the
    HMAC covers the message up to the attribute, its length counting the attribute)."""
    offset = message.offset(_MESSAGE_INTEGRITY)
    value = message.first(_MESSAGE_INTEGRITY)
    if offset is None or value is None or len(value) != _INTEGRITY_LENGTH:
        return False
    covered = _with_length(datagram[:offset], offset - _HEADER.size + 4 + _INTEGRITY_LENGTH)
    return hmac.compare_digest(hmac.new(key, covered, hashlib.sha1).digest(), value)


def fingerprint_ok(datagram: bytes, message: StunMessage) -> bool:
    offset = message.offset(_FINGERPRINT)
    value = message.first(_FINGERPRINT)
    if offset is None or value is None or len(value) != 4:
        return True  # optional in requests
    (received,) = struct.unpack("!I", value)
    return bool(received == _fingerprint(datagram[:offset]))


@dataclass(slots=True)
class IceLiteResponder:
    """Answers the connectivity checks of one media stream's remote agent.

    ``local_ufrag``/``local_pwd`` are what our SDP announced; ``remote_ufrag`` the
    browser's (checks name both: "ours:theirs"). ``nominated`` is the source of the
    last valid check with USE-CANDIDATE: where media goes.
    """

    local_ufrag: str
    local_pwd: str
    remote_ufrag: str | None = None
    nominated: tuple[str, int] | None = None

    def handle(self, datagram: bytes, source: tuple[str, int]) -> bytes | None:
        """The response to a STUN datagram from ``source``, or None (not a request, or
        one to ignore: RFC 8445 7.3 says a request failing integrity gets a 401, one
        naming someone else's credentials gets nothing useful either way)."""
        try:
            message = parse(datagram)
        except StunError:
            return None
        if message.type != _BINDING_REQUEST or not fingerprint_ok(datagram, message):
            return None
        username = message.first(_USERNAME)
        key = self.local_pwd.encode()
        if username is None or message.first(_MESSAGE_INTEGRITY) is None:
            return self._error(message, 400, "Bad Request")
        ours, _, theirs = username.decode(errors="replace").partition(":")
        if ours != self.local_ufrag or (self.remote_ufrag and theirs != self.remote_ufrag):
            return self._error(message, 401, "Unauthorized")
        if not integrity_ok(datagram, message, key):
            return self._error(message, 401, "Unauthorized")
        if message.first(_USE_CANDIDATE) is not None:
            self.nominated = source
        mapped = _xor_address(source[0], source[1], message.transaction_id)
        return build(_BINDING_SUCCESS, message.transaction_id, [(_XOR_MAPPED_ADDRESS, mapped)], key)

    @staticmethod
    def _error(message: StunMessage, code: int, reason: str) -> bytes:
        value = struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode()
        return build(_BINDING_ERROR, message.transaction_id, [(_ERROR_CODE, value)], None)
