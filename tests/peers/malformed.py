"""Malformed SIP for flood tests: every byte from the network is untrusted.

`malformed_messages()` gives named, deterministic cases; `flood()` fires them at a
server over UDP (one datagram each) or TCP (one connection each, as a stream).
A test floods, then checks the server still answers a well-formed request.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Iterable

_HEADERS = [
    "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-flood-{n};rport",
    "Max-Forwards: 70",
    "From: <sip:flood@acme.example>;tag=flood{n}",
    "To: <sip:1001@acme.example>",
    "Call-ID: flood-{n}@127.0.0.1",
    "CSeq: 1 INVITE",
    "Contact: <sip:flood@127.0.0.1:5099>",
    "Content-Type: application/sdp",
]
_BODY = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\n"
)
_START = "INVITE sip:1001@acme.example SIP/2.0"


def valid_invite(n: int = 0, *, headers: list[str] | None = None, body: str = _BODY) -> bytes:
    """A well-formed INVITE, the base every malformed case is cut from."""
    lines = [_START, *(h.format(n=n) for h in (headers if headers is not None else _HEADERS))]
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def _truncated() -> Iterable[tuple[str, bytes]]:
    whole = valid_invite(1)
    for cut in (1, 7, len(_START), len(_START) + 2, 60, whole.index(b"\r\n\r\n"), len(whole) - 5):
        yield f"truncated at {cut}", whole[:cut]


def _bad_start_lines() -> Iterable[tuple[str, bytes]]:
    rest = valid_invite(2)[len(_START) :]
    for name, start in [
        ("no version", "INVITE sip:1001@acme.example"),
        ("bad version", "INVITE sip:1001@acme.example SIP/3.0"),
        ("lower-case version", "INVITE sip:1001@acme.example sip/2.0"),
        ("no uri", "INVITE  SIP/2.0"),
        ("bad uri", "INVITE sip:@@:: SIP/2.0"),
        ("unterminated ipv6", "INVITE sip:1001@[::1 SIP/2.0"),
        ("bad method chars", "INV(TE sip:1001@acme.example SIP/2.0"),
        ("response without code", "SIP/2.0  OK"),
        ("response code too long", "SIP/2.0 2000 OK"),
        ("http", "GET / HTTP/1.1"),
        ("empty", ""),
        ("tabs only", "\t\t\t"),
    ]:
        yield f"start line: {name}", start.encode() + rest


def _missing_headers() -> Iterable[tuple[str, bytes]]:
    for i, header in enumerate(_HEADERS):
        if header.startswith(("Contact", "Content-Type")):
            continue
        kept = _HEADERS[:i] + _HEADERS[i + 1 :]
        yield f"missing {header.split(':')[0]}", valid_invite(3, headers=kept)


def _bad_headers() -> Iterable[tuple[str, bytes]]:
    base = valid_invite(4).decode()
    for name, old, new in [
        ("CSeq not a number", "CSeq: 1 INVITE", "CSeq: one INVITE"),
        ("CSeq method mismatch", "CSeq: 1 INVITE", "CSeq: 1 BYE"),
        ("CSeq huge", "CSeq: 1 INVITE", "CSeq: 99999999999999999999 INVITE"),
        ("Max-Forwards negative", "Max-Forwards: 70", "Max-Forwards: -1"),
        ("Via without branch", ";branch=z9hG4bK-flood-4", ""),
        ("Via garbage", "SIP/2.0/UDP 127.0.0.1:5099", "SIP/2.0/???"),
        ("From unclosed bracket", "<sip:flood@acme.example>", "<sip:flood@acme.example"),
        ("header without colon", "Max-Forwards: 70", "Max-Forwards 70"),
        ("unterminated quote", "From: <sip", 'From: "Flood <sip'),
        ("folded into nothing", "Max-Forwards: 70", "Max-Forwards:\r\n \r\n 70"),
        ("NUL in header", "Max-Forwards: 70", "Max-Forwards: 7\x000"),
    ]:
        yield f"header: {name}", base.replace(old, new, 1).encode()
    yield (
        "header: invalid UTF-8",
        base.replace("flood@", "fl\udcffood@", 1).encode("utf-8", "surrogateescape"),
    )


def _bad_content_length() -> Iterable[tuple[str, bytes]]:
    base = valid_invite(5).decode()
    real = f"Content-Length: {len(_BODY)}"
    for value in (
        "-1",
        "abc",
        "99999",
        "1e3",
        "",
        "18446744073709551617",
        "0x20",
        f"{len(_BODY)} 5",
    ):
        yield f"Content-Length {value!r}", base.replace(real, f"Content-Length: {value}").encode()
    yield "Content-Length twice", base.replace(real, f"{real}\r\nContent-Length: 3").encode()


def _garbage(rng: random.Random) -> Iterable[tuple[str, bytes]]:
    for size in (1, 16, 200, 1400):
        yield f"random bytes {size}", rng.randbytes(size)
    yield "NUL bytes", b"\x00" * 512
    yield "CRLF only", b"\r\n" * 100
    yield "keepalive then garbage", b"\r\n\r\n" + rng.randbytes(64)


def _huge(count: int, size: int) -> Iterable[tuple[str, bytes]]:
    many = _HEADERS + [f"X-Flood-{i}: {i}" for i in range(count)]
    yield f"{count} headers", valid_invite(6, headers=many)
    # A Via is longer than an X- header: half as many keeps the datagram under 64 KiB.
    vias = [f"Via: SIP/2.0/UDP 10.0.0.{i % 250}:5060;branch=z9hG4bK{i}" for i in range(count // 2)]
    yield f"{count // 2} Via headers", valid_invite(6, headers=vias + _HEADERS[1:])
    long_value = "a" * size
    yield (
        f"header value of {size} bytes",
        valid_invite(6, headers=[*_HEADERS, f"Subject: {long_value}"]),
    )
    yield f"body of {size} bytes", valid_invite(6, body="x" * size)


def malformed_messages(
    seed: int = 0, *, header_count: int = 2000, oversize: int = 60000
) -> list[tuple[str, bytes]]:
    """(name, payload) for every case, the same list for the same arguments.

    `oversize` stays under the 65,507-byte UDP payload limit so the datagram is sent and
    the server has to refuse it, not the kernel.
    """
    rng = random.Random(seed)
    cases: list[tuple[str, bytes]] = []
    for group in (
        _truncated(),
        _bad_start_lines(),
        _missing_headers(),
        _bad_headers(),
        _bad_content_length(),
        _garbage(rng),
        _huge(header_count, oversize),
    ):
        cases.extend(group)
    return cases


async def flood(
    host: str,
    port: int,
    messages: Iterable[bytes],
    *,
    transport: str = "udp",
    repeat: int = 1,
    within: float = 5.0,
) -> int:
    """Send every message `repeat` times, each within `within` s; return how many were sent.

    UDP: one datagram each, from one socket (answers are ignored). TCP: one connection
    per message, written whole then closed, so each case meets a fresh parser.
    """
    payloads = [m for _ in range(repeat) for m in messages]
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            for payload in payloads:
                await asyncio.wait_for(loop.sock_sendto(sock, payload, (host, port)), within)
        return len(payloads)
    if transport != "tcp":
        raise ValueError(f"transport {transport!r}: use 'udp' or 'tcp'")
    for payload in payloads:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
        try:
            writer.write(payload)
            await asyncio.wait_for(writer.drain(), within)
        finally:
            writer.close()
            # The server may reset the connection on garbage: that is its right.
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return len(payloads)
