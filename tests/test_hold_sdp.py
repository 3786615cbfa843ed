"""The SDP side of hold and resume: what counts as a hold, and our own answers to it."""

from __future__ import annotations

import pytest

from nuage.media import sdp
from nuage.pbx.offer_answer import (
    SdpRejected,
    anchor,
    keep_telephone_event,
    local_answer,
    offer_telephone_event,
    own_answer,
    sending_codec_only,
)


class Side:
    """A stand-in relay side: where SDP sends this party's media, and our port for it."""

    local_address = "192.0.2.1"
    rtp_port = 40000
    rtcp_port = 40001

    def __init__(self) -> None:
        self.remote: tuple[str, int] | None = None

    def set_remote(self, host: str, port: int, rtcp_port: int | None = None) -> None:
        self.remote = (host, port)


def offer(
    direction: str = "", host: str = "198.51.100.7", version: int = 1
) -> sdp.SessionDescription:
    line = f"a={direction}\r\n" if direction else ""
    return sdp.parse(
        f"v=0\r\no=phone 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        "m=audio 5004 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"{line}"
        "m=video 5006 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    )


LAST_SENT = sdp.parse(
    "v=0\r\no=nuage 7 3 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    "m=video 0 RTP/AVP 96\r\n"
)


@pytest.mark.parametrize(
    ("direction", "host", "hold"),
    [
        ("sendonly", "198.51.100.7", True),
        ("inactive", "198.51.100.7", True),
        ("", "0.0.0.0", True),  # RFC 2543 hold
        ("sendrecv", "198.51.100.7", False),
        ("recvonly", "198.51.100.7", False),
    ],
)
def test_a_hold_is_an_offer_that_does_not_want_audio(direction: str, host: str, hold: bool) -> None:
    anchored = anchor(offer(direction, host), Side(), Side())  # type: ignore[arg-type]
    assert anchored.receives is not hold
    assert anchored.audio == 0


@pytest.mark.parametrize(
    ("direction", "answered"),
    [("sendonly", "recvonly"), ("inactive", "inactive"), ("sendrecv", "sendrecv")],
)
def test_our_answer_keeps_the_call_codec_and_mirrors_the_direction(
    direction: str, answered: str
) -> None:
    answer = local_answer(offer(direction), 0, LAST_SENT)
    audio, video = answer.media
    assert audio.formats == ["0", "101"]
    assert audio.port == 40000
    assert audio.direction == sdp.Direction(answered)
    assert video.rejected
    # A new version of the same session (RFC 3264 8).
    assert (answer.origin.session_id, answer.origin.version) == ("7", 4)
    assert LAST_SENT.origin.version == 3


def test_a_re_offer_without_the_call_codec_is_refused() -> None:
    pcma_only = sdp.parse(offer("sendonly").serialize().replace("RTP/AVP 0 8 101", "RTP/AVP 8"))
    with pytest.raises(SdpRejected):
        local_answer(pcma_only, 0, LAST_SENT)


def _description(formats: str, extra: str = "") -> sdp.SessionDescription:
    return sdp.parse(
        (
            "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n"
            f"m=audio 4000 RTP/AVP {formats}\r\n{extra}"
        ).encode()
    )


def test_the_offerers_telephone_event_is_kept_when_the_answerer_has_none() -> None:
    offered = _description("0 101", "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n")
    answer = _description("0")
    keep_telephone_event(answer, offered)
    audio = answer.media[0]
    assert audio.formats == ["0", "101"]
    assert audio.rtpmaps[101].encoding == "telephone-event" and audio.fmtp(101) == "0-15"
    events = "a=rtpmap:96 telephone-event/8000\r\n"
    offered_events = "a=rtpmap:101 telephone-event/8000\r\n"
    for answer_formats, extra, offer_formats, offer_extra, expected in (
        ("0 96", events, "0 101", offered_events, ["0", "96"]),  # the answerer's own
        ("0 96", events, "0", "", ["0"]),  # we offered it, the caller did not: left out
        ("0", "", "0", "", ["0"]),
    ):
        answer = _description(answer_formats, extra)
        keep_telephone_event(answer, _description(offer_formats, offer_extra))
        assert answer.media[0].formats == expected
        assert (96 in answer.media[0].rtpmaps) == ("96" in expected)


def test_telephone_event_is_offered_to_every_callee() -> None:
    offered = _description("0 8 101", "a=rtpmap:101 H264/90000\r\n")
    offer_telephone_event(offered)
    audio = offered.media[0]
    assert audio.formats == ["0", "8", "101", "96"] and audio.fmtp(96) == "0-15"
    assert audio.rtpmaps[96].encoding == "telephone-event"
    offer_telephone_event(offered)  # already there: unchanged
    assert offered.media[0].formats == ["0", "8", "101", "96"]


def test_our_own_answer_keeps_one_playable_codec_and_telephone_event() -> None:
    side = Side()
    answer, codec = own_answer(offer(), side, lambda c: c.encoding == "PCMA")  # type: ignore[arg-type]
    audio, video = answer.media
    assert codec.payload_type == 8 and audio.formats == ["8", "101"]
    assert (audio.port, video.port) == (40000, 0)
    assert answer.origin.username == "nuage" and answer.connection is not None
    assert answer.connection.address == "192.0.2.1"
    assert side.remote == ("198.51.100.7", 5004)
    # A holding offer is answered recvonly; no codec we can play is a refusal.
    held, _ = own_answer(offer("sendonly"), Side(), lambda c: True)  # type: ignore[arg-type]
    assert held.media[0].direction == sdp.Direction.RECVONLY
    with pytest.raises(SdpRejected):
        own_answer(offer(), Side(), lambda c: False)  # type: ignore[arg-type]


def test_an_answer_standing_for_an_offer_keeps_the_codec_its_party_sends_with() -> None:
    """Click-to-call: a browser answered our offer with three codecs and sends the first
    (G722); the target must not be offered PCMU, or each would hear what it cannot
    decode. telephone-event and the codec's own lines stay; the original is untouched."""
    answer = sdp.parse(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 101 9 0 8\r\nc=IN IP4 127.0.0.1\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtpmap:9 G722/8000\r\n"
        "a=rtcp-fb:9 nack\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-fb:0 nack\r\n"
        "a=rtpmap:8 PCMA/8000\r\na=setup:active\r\na=mid:0\r\n"
    )
    only = sending_codec_only(answer)
    [audio] = only.media
    assert audio.formats == ["101", "9"]
    assert [(a.name, a.value) for a in audio.attributes] == [
        ("rtpmap", "101 telephone-event/8000"),
        ("fmtp", "101 0-15"),
        ("rtpmap", "9 G722/8000"),
        ("rtcp-fb", "9 nack"),
        ("setup", "active"),
        ("mid", "0"),
    ]
    assert answer.media[0].formats == ["101", "9", "0", "8"]
