"""RTP packets (RFC 3550 section 5.1) for the streams the server itself sends or reads:
players, recorders, DTMF. Relayed packets are never parsed (see relay.py)."""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

HEADER = struct.Struct("!BBHII")
VERSION_BITS = 0x80
MARKER = 0x80


class RtpError(ValueError):
    """Bytes that are not an RTP packet this server can read."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse a packet; CSRCs, a header extension and padding are skipped."""
        if len(data) < HEADER.size:
            raise RtpError("shorter than an RTP header")
        first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise RtpError("not RTP version 2")
        offset = HEADER.size + 4 * (first & 0x0F)
        if first & 0x10:
            if len(data) < offset + 4:
                raise RtpError("truncated header extension")
            (words,) = struct.unpack_from("!H", data, offset + 2)
            offset += 4 + 4 * words
        end = len(data)
        if first & 0x20:
            padding = data[-1] if data else 0
            if padding == 0 or padding > end - offset:
                raise RtpError("bad padding")
            end -= padding
        if offset > end:
            raise RtpError("truncated packet")
        return cls(
            second & 0x7F, sequence, timestamp, ssrc, data[offset:end], bool(second & MARKER)
        )


class RtpSender:
    """The header state of one stream this server originates: its own SSRC, a sequence
    number and a timestamp that start at random values (RFC 3550 5.1) and advance by
    one and by the samples sent."""

    __slots__ = ("payload_type", "sequence", "ssrc", "timestamp")

    def __init__(self, payload_type: int) -> None:
        self.payload_type = payload_type
        self.ssrc = secrets.randbits(32)
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)

    def packet(self, payload: bytes, samples: int, *, marker: bool = False) -> bytes:
        """The next packet carrying ``payload``; the timestamp then moves by ``samples``."""
        data = (
            HEADER.pack(
                VERSION_BITS,
                self.payload_type | (MARKER if marker else 0),
                self.sequence,
                self.timestamp,
                self.ssrc,
            )
            + payload
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        return data
