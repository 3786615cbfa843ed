"""StreamFramer: Content-Length framing over TCP/TLS, keep-alive pings, and framing errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuage.sip.framing import PING, FramingError, StreamFramer
from nuage.sip.message import Request
from nuage.sip.parser import parse_message

from .strategies import requests


def message(body: bytes = b"", length_header: str = "Content-Length") -> bytes:
    head = (
        "OPTIONS sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP a.example.com;branch=z9hG4bK1\r\n"
        "To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=1\r\n"
        "Call-ID: x@y\r\nCSeq: 1 OPTIONS\r\n"
    )
    return f"{head}{length_header}: {len(body)}\r\n\r\n".encode() + body


def test_whole_messages_in_one_feed() -> None:
    first, second = message(b"hello"), message(b"")
    assert StreamFramer().feed(first + second) == [first, second]


def test_message_split_across_feeds_byte_by_byte() -> None:
    data = message(b"0123456789")
    framer = StreamFramer()
    frames = [frame for byte in data for frame in framer.feed(bytes([byte]))]
    assert frames == [data]


def test_body_may_contain_crlfcrlf_and_compact_folded_length() -> None:
    body = b"a\r\n\r\nb"
    data = message(body).replace(b"Content-Length: 6", b"l :\r\n 6")
    assert StreamFramer().feed(data + data) == [data, data]


def test_missing_content_length_means_no_body() -> None:
    data = message().replace(b"Content-Length: 0\r\n", b"")
    assert StreamFramer().feed(data + data) == [data, data]


def test_pings_and_stray_crlfs() -> None:
    data = message()
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [PING]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n" + data + b"\r\n\r\n\r\n" + data) == [PING, data, PING, data]
    # A single CRLF (a pong, or padding) before a message is skipped.
    assert framer.feed(b"\r\n" + data) == [data]
    assert not PING.strip(b"\r\n")


@pytest.mark.parametrize(
    "data",
    [
        message(b"abc").replace(b"Content-Length: 3", b"Content-Length: -3"),
        message(b"abc").replace(b"Content-Length: 3", b"Content-Length: three"),
        message(b"abc").replace(b"Content-Length: 3", b"Content-Length: 3\r\nl: 3"),
        message(b"abc").replace(b"Content-Length: 3", b"Content-Length: 99999999999"),
        message(b"abc").replace(b"Content-Length: 3", b"Content-Length: 70000"),
    ],
)
def test_bad_content_length_is_a_framing_error(data: bytes) -> None:
    with pytest.raises(FramingError):
        StreamFramer().feed(data)


def test_oversized_header_section() -> None:
    framer = StreamFramer(max_size=1000)
    assert framer.feed(b"INVITE sip:x SIP/2.0\r\nX: " + b"a" * 900) == []
    with pytest.raises(FramingError):
        framer.feed(b"a" * 200)


def test_oversized_message() -> None:
    with pytest.raises(FramingError):
        StreamFramer(max_size=500).feed(message(b"x" * 600)[:300])


@given(st.lists(requests(), min_size=1, max_size=4), st.data())
def test_any_segmentation_yields_the_messages(messages: list[Request], data: st.DataObject) -> None:
    stream = b"".join(bytes(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    framer = StreamFramer()
    frames: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames.extend(framer.feed(stream[start:end]))
    assert [parse_message(frame) for frame in frames] == messages
