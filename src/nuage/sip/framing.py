"""Cut a TCP/TLS byte stream into SIP messages (RFC 3261 section 18.3; RFC 5626 keep-alives).

Sans-I/O: :meth:`StreamFramer.feed` takes the bytes that arrived and returns the complete
messages they finish, each as raw bytes for :func:`nuage.sip.parser.parse_message`.
A keep-alive ping (CRLFCRLF between messages, RFC 5626 section 3.5.1) comes back as the
item :data:`PING`, in order among the messages, so that the transport answers it with a
single CRLF. :class:`FramingError` means the stream cannot be resynchronised: close it.
"""

from __future__ import annotations

import re

PING = b"\r\n\r\n"
_CRLF = b"\r\n"
# A Content-Length header line (long or compact name) with its folded continuations.
# The alternatives of the repeated group are disjoint, so matching stays linear.
_CONTENT_LENGTH_RE = re.compile(
    rb"\r\n(?:content-length|l)[ \t]*:((?:[^\r\n]|\r\n[ \t])*)", re.IGNORECASE
)
_DIGITS_RE = re.compile(rb"[0-9]{1,10}")


class FramingError(ValueError):
    """The stream broke framing (oversized header section, bad Content-Length)."""


class StreamFramer:
    """Frames messages by Content-Length; a message without one has no body."""

    __slots__ = ("_buffer", "_max_size", "_scan_from", "_total")

    def __init__(self, *, max_size: int = 65536) -> None:
        self._max_size = max_size
        self._buffer = bytearray()
        # Where the search for the end of the header section resumes, so that a message
        # arriving in many small segments is not rescanned from the start each time.
        self._scan_from = 0
        # The length of the message at the head of the buffer once its headers are read.
        self._total: int | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the messages and pings they complete, in order."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        while True:
            if self._total is None:
                if not self._skip_crlfs(frames):
                    return frames
                total = self._header_length()
                if total is None:
                    return frames
                self._total = total
            if len(buffer) < self._total:
                return frames
            frames.append(bytes(buffer[: self._total]))
            del buffer[: self._total]
            self._total = None
            self._scan_from = 0

    def _skip_crlfs(self, frames: list[bytes]) -> bool:
        """Consume pings and stray CRLFs before a message; False when more bytes are needed."""
        buffer = self._buffer
        while buffer.startswith(_CRLF):
            if buffer.startswith(PING):
                frames.append(PING)
                del buffer[:4]
            elif len(buffer) < 4 and PING.startswith(buffer):
                # "\r\n" or "\r\n\r" may still become a ping.
                return False
            else:
                # RFC 3261 section 7.5: CRLFs before a start line are ignored.
                del buffer[:2]
        return bool(buffer)

    def _header_length(self) -> int | None:
        """The whole message's length once its header section is in, else None."""
        buffer = self._buffer
        end = buffer.find(PING, self._scan_from)
        if end < 0:
            if len(buffer) > self._max_size:
                raise FramingError(f"header section longer than {self._max_size} bytes")
            self._scan_from = max(0, len(buffer) - 3)
            return None
        length = 0
        found = False
        for match in _CONTENT_LENGTH_RE.finditer(buffer, 0, end):
            if found:
                raise FramingError("more than one Content-Length header")
            found = True
            value = match.group(1).replace(_CRLF, b"").strip(b" \t")
            if not _DIGITS_RE.fullmatch(value):
                raise FramingError(f"bad Content-Length {value[:20]!r}")
            length = int(value)
        total = end + 4 + length
        if total > self._max_size:
            raise FramingError(f"message longer than {self._max_size} bytes")
        return total
