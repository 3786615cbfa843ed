from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuage.media import sdp
from nuage.media.sdp import (
    Attribute,
    Direction,
    Endpoint,
    MediaDescription,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
)

# As baresip 3.x sends it (LF line ends are also seen from some builds).
BARESIP_OFFER = (
    "v=0\r\n"
    "o=- 1426339157 4120564862 IN IP4 192.168.1.20\r\n"
    "s=-\r\n"
    "c=IN IP4 192.168.1.20\r\n"
    "t=0 0\r\n"
    "m=audio 10148 RTP/AVP 9 0 8 101\r\n"
    "b=AS:80\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=sendrecv\r\n"
    "a=label:1\r\n"
    "a=rtcp-rsize\r\n"
    "a=ssrc:1815613420 cname:fc0ae4a3-d1ab-4fe0-b364-4ac42de01a1e\r\n"
)

# sipp's uac scenario with the media section of its pcap-play examples.
SIPP_OFFER = (
    "v=0\r\n"
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\n"
    "m=audio 6000 RTP/AVP 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)

# Linphone: media-level c=, a=rtcp, ICE candidates, Opus with fmtp, ptime.
LINPHONE_OFFER = (
    "v=0\r\n"
    "o=alice 2716 1563 IN IP4 10.0.0.7\r\n"
    "s=Talk\r\n"
    "t=0 0\r\n"
    "a=ice-pwd:9f0d6c3e0bb5e0a1c5d1a8b2\r\n"
    "a=ice-ufrag:3b4f8c1a\r\n"
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n"
    "m=audio 7078 RTP/AVP 96 0 8 101 97\r\n"
    "c=IN IP4 10.0.0.7\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
    "a=fmtp:96 useinbandfec=1\r\n"
    "a=rtpmap:101 telephone-event/48000\r\n"
    "a=rtpmap:97 telephone-event/8000\r\n"
    "a=ptime:20\r\n"
    "a=rtcp:7079 IN IP4 10.0.0.7\r\n"
    "a=candidate:1 1 UDP 2130706431 10.0.0.7 7078 typ host\r\n"
    "a=candidate:1 2 UDP 2130706430 10.0.0.7 7079 typ host\r\n"
    "a=candidate:2 1 UDP 1694498815 203.0.113.9 51234 typ srflx raddr 10.0.0.7 rport 7078\r\n"
    "a=rtcp-fb:* trr-int 5000\r\n"
    "m=video 0 RTP/AVP 103\r\n"
    "a=rtpmap:103 VP8/90000\r\n"
)

# A hold re-offer with the RFC 2543 null address and an IPv6 answer.
HOLD_REOFFER = (
    "v=0\r\n"
    "o=- 1426339157 4120564863 IN IP4 192.168.1.20\r\n"
    "s=-\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "t=0 0\r\n"
    "a=sendonly\r\n"
    "m=audio 10148 RTP/AVP 0\r\n"
)
IPV6_ANSWER = (
    "v=0\r\n"
    "o=- 1 1 IN IP6 2001:db8::5\r\n"
    "s=-\r\n"
    "c=IN IP6 2001:db8::5\r\n"
    "t=0 0\r\n"
    "m=audio 40000 RTP/AVP 8\r\n"
    "a=recvonly\r\n"
)

SAMPLES = [BARESIP_OFFER, SIPP_OFFER, LINPHONE_OFFER, HOLD_REOFFER, IPV6_ANSWER]


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_is_exact(text: str) -> None:
    assert sdp.parse(text).serialize() == text
    assert sdp.parse(text.encode()).encode() == text.encode()


@pytest.mark.parametrize("text", SAMPLES)
def test_bare_lf_and_trailing_blank_lines_are_accepted(text: str) -> None:
    lf = text.replace("\r\n", "\n") + "\n\n"
    assert sdp.parse(lf) == sdp.parse(text)


def test_baresip_offer_model() -> None:
    description = sdp.parse(BARESIP_OFFER)
    assert description.origin == Origin("-", "1426339157", 4120564862, "192.168.1.20", "IP4", "IN")
    assert description.connection == sdp.Connection("192.168.1.20")
    (audio,) = description.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 10148, "RTP/AVP")
    assert audio.formats == ["9", "0", "8", "101"]
    assert [c.encoding for c in audio.codecs] == ["G722", "PCMU", "PCMA", "telephone-event"]
    assert audio.fmtp(101) == "0-15"
    assert audio.fmtp(0) is None
    assert audio.direction is Direction.SENDRECV
    assert audio.bandwidths == [sdp.Bandwidth("AS", 80)]
    assert audio.attribute("ssrc") == "1815613420 cname:fc0ae4a3-d1ab-4fe0-b364-4ac42de01a1e"
    assert audio.has_attribute("rtcp-rsize")
    assert description.remote_endpoints() == [Endpoint("192.168.1.20", 10148, 10149)]


def test_static_payload_types_need_no_rtpmap() -> None:
    description = sdp.parse(SIPP_OFFER.replace("a=rtpmap:0 PCMU/8000\r\n", ""))
    assert description.media[0].codecs == [RtpMap(0, "PCMU", 8000, 1)]


def test_linphone_offer_model() -> None:
    description = sdp.parse(LINPHONE_OFFER)
    audio, video = description.media
    assert description.connection is None
    assert audio.rtpmaps[96] == RtpMap(96, "opus", 48000, 2)
    assert audio.fmtp(96) == "useinbandfec=1"
    assert audio.ptime == 20.0
    assert audio.rtcp == sdp.Rtcp(7079, sdp.Connection("10.0.0.7"))
    assert video.rejected
    assert description.media_direction(audio) is Direction.SENDRECV
    assert description.remote_endpoints() == [Endpoint("10.0.0.7", 7078, 7079), None]


def test_session_level_direction_and_null_address() -> None:
    description = sdp.parse(HOLD_REOFFER)
    assert description.direction is Direction.SENDONLY
    assert description.media_direction(description.media[0]) is Direction.SENDONLY
    assert description.remote_endpoints() == [Endpoint("0.0.0.0", 10148, 10149)]


def test_anchor_points_media_at_the_relay_and_keeps_codecs() -> None:
    original = sdp.parse(LINPHONE_OFFER)
    anchored = sdp.anchor(original, "203.0.113.1", [30000, 30002])
    audio, video = anchored.media
    assert anchored.connection == sdp.Connection("203.0.113.1")
    assert audio.connection == sdp.Connection("203.0.113.1")
    assert anchored.origin.address == "203.0.113.1"
    assert anchored.origin.version == original.origin.version
    assert audio.port == 30000
    assert audio.rtcp == sdp.Rtcp(30001, sdp.Connection("203.0.113.1"))
    assert audio.formats == original.media[0].formats
    assert audio.codecs == original.media[0].codecs
    assert audio.fmtp(96) == "useinbandfec=1"
    assert not audio.has_attribute("candidate")
    assert not any(a.name.startswith("ice-") for a in anchored.attributes)
    assert anchored.attributes == [original.attributes[2]]  # rtcp-xr is kept
    assert video.rejected  # a rejected section stays rejected
    assert anchored.remote_endpoints() == [Endpoint("203.0.113.1", 30000, 30001), None]
    # The original is untouched and the result is valid SDP.
    assert original.media[0].port == 7078
    assert sdp.parse(anchored.serialize()) == anchored


def test_anchor_with_port_zero_rejects_a_section_and_handles_ipv6() -> None:
    description = sdp.parse(BARESIP_OFFER)
    assert sdp.anchor(description, "2001:db8::1", [0]).media[0].rejected
    anchored = sdp.anchor(description, "2001:DB8::1", [40000])
    assert anchored.connection == sdp.Connection("2001:db8::1", "IP6")
    assert "c=IN IP6 2001:db8::1\r\n" in anchored.serialize()


def test_anchor_argument_errors() -> None:
    description = sdp.parse(LINPHONE_OFFER)
    with pytest.raises(ValueError, match="2 media sections"):
        sdp.anchor(description, "203.0.113.1", [30000])
    with pytest.raises(ValueError, match="not an IP address"):
        sdp.anchor(description, "relay.example", [30000, 0])
    with pytest.raises(ValueError, match="invalid port"):
        sdp.anchor(description, "203.0.113.1", [70000, 0])


def test_bump_version() -> None:
    description = sdp.parse(SIPP_OFFER)
    bumped = sdp.bump_version(description)
    assert bumped.origin.version == 2353687638
    assert description.origin.version == 2353687637
    assert "o=user1 53655765 2353687638 IN IP4 127.0.0.1\r\n" in bumped.serialize()


def test_direction_setter_replaces_in_place() -> None:
    audio = sdp.parse(BARESIP_OFFER).media[0]
    position = [a.name for a in audio.attributes].index("sendrecv")
    audio.direction = Direction.SENDONLY
    assert audio.attributes[position] == Attribute("sendonly")
    audio.direction = None
    assert audio.direction is None
    audio.direction = Direction.INACTIVE
    assert audio.attributes[-1] == Attribute("inactive")


@pytest.mark.parametrize(
    ("offer", "local", "answer"),
    [
        (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV),
        (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY),
        (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY),
        (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE),
        (Direction.SENDRECV, Direction.SENDONLY, Direction.SENDONLY),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE),
        (Direction.RECVONLY, Direction.RECVONLY, Direction.INACTIVE),
    ],
)
def test_answer_direction(offer: Direction, local: Direction, answer: Direction) -> None:
    assert sdp.answer_direction(offer, local) is answer


def test_built_description_serializes() -> None:
    description = SessionDescription(
        origin=Origin("nuage", "42", 1, "198.51.100.2"),
        connection=sdp.Connection("198.51.100.2"),
        media=[
            MediaDescription(
                "audio",
                20000,
                "RTP/AVP",
                ["8", "101"],
                attributes=[Attribute("rtpmap", "101 telephone-event/8000")],
            )
        ],
    )
    description.media[0].direction = Direction.SENDRECV
    assert description.serialize() == (
        "v=0\r\no=nuage 42 1 IN IP4 198.51.100.2\r\ns=-\r\nc=IN IP4 198.51.100.2\r\n"
        "t=0 0\r\nm=audio 20000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=sendrecv\r\n"
    )


def test_optional_session_lines_are_kept() -> None:
    text = (
        "v=0\r\no=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\ns=SDP Seminar\r\n"
        "i=A Seminar on the session description protocol\r\n"
        "u=http://www.example.com/seminars/sdp.pdf\r\ne=j.doe@example.com (Jane Doe)\r\n"
        "p=+1 617 555-6011\r\nc=IN IP4 224.2.17.12/127\r\nb=CT:128\r\n"
        "t=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h 2898848070 0\r\n"
        "k=prompt\r\na=recvonly\r\nm=audio 49170/2 RTP/AVP 0\r\ni=main audio\r\n"
        "m=application 32416 udp wb\r\na=orient:portrait\r\n"
    )
    description = sdp.parse(text)
    assert description.serialize() == text
    assert description.media[0].port_count == 2
    assert description.media[1].formats == ["wb"]
    assert description.timings[0].repeats == ["7d 1h 0 25h"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("hello world", "not <type>=<value>"),
        ("v=1\r\n", "version"),
        ("o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", "expected v="),
        ("v=0\r\ns=-\r\n", "expected o="),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=0 0\r\n", "expected s="),
        ("v=0\r\no=- 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n", "6 fields"),
        ("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n", "numbers"),
        ("v=0\r\no=- 1 1 ATM IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n", "network type"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n", "no t="),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nx=1\r\n", "unknown"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 999.1.1.1\r\nt=0 0\r\n", "invalid"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 ::1\r\nt=0 0\r\n", "not IP4"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n\r\na=x\r\n", "not <type>"),
        ("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP\r\n", "m= needs"),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
            "no c= line",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            "m=audio 70000 RTP/AVP 0\r\n",
            "port",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            "m=audio 5000 RTP/AVP 128\r\n",
            "payload type",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            "m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            "rtpmap",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            "m=audio 5000 RTP/AVP 0\r\na=sendonly\r\na=recvonly\r\n",
            "direction",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            "m=audio 5000 RTP/AVP 0\r\na=rtcp:abc\r\n",
            "rtcp",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            "m=audio 5000 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.5\r\n",
            "more than one c=",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
            "m=audio 5000 RTP/AVP 0\r\nt=0 0\r\n",
            "misplaced",
        ),
    ],
)
def test_garbage_is_rejected(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        sdp.parse(text)


def test_binary_and_oversized_input_is_rejected() -> None:
    with pytest.raises(SdpError, match="UTF-8"):
        sdp.parse(b"v=0\r\n\xff\xfe")
    with pytest.raises(SdpError, match="larger"):
        sdp.parse(SIPP_OFFER + "a=x:" + "y" * sdp.MAX_SDP_SIZE + "\r\n")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_sdp_error(data: bytes) -> None:
    try:
        description = sdp.parse(data)
    except SdpError:
        return
    assert sdp.parse(description.serialize()) == description


@given(st.lists(st.sampled_from(SIPP_OFFER.splitlines(keepends=True)), max_size=12))
def test_shuffled_lines_raise_only_sdp_error(lines: list[str]) -> None:
    try:
        description = sdp.parse("".join(lines))
    except SdpError:
        return
    assert sdp.parse(description.serialize()) == description


# Attributes whose values the parser checks; the others are free text.
_INTERPRETED = {"rtpmap", "rtcp", "ptime", "sendrecv", "sendonly", "recvonly", "inactive"}
_tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.+_", min_size=1, max_size=12)
_ipv4 = st.ip_addresses(v=4).map(str)
_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\0"),
    max_size=20,
)
_attributes = st.lists(
    st.builds(Attribute, _tokens.filter(lambda name: name not in _INTERPRETED), _text | st.none()),
    max_size=4,
)
_media = st.builds(
    MediaDescription,
    media=st.sampled_from(["audio", "video"]),
    port=st.integers(0, 65535),
    proto=st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF"]),
    formats=st.lists(st.integers(0, 127).map(str), min_size=1, max_size=5),
    connection=st.builds(sdp.Connection, _ipv4) | st.none(),
    bandwidths=st.lists(st.builds(sdp.Bandwidth, st.sampled_from(["AS", "TIAS"]), st.integers(0))),
    attributes=_attributes,
)


@given(
    st.builds(
        SessionDescription,
        origin=st.builds(Origin, _tokens, st.integers(0).map(str), st.integers(0), _ipv4),
        session_name=_text.filter(bool),
        connection=st.builds(sdp.Connection, _ipv4),
        attributes=_attributes,
        media=st.lists(_media, max_size=3),
    )
)
def test_parse_inverts_serialize(description: SessionDescription) -> None:
    assert sdp.parse(description.serialize()) == description
