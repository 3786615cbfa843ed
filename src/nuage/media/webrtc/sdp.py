"""SDP between a WebRTC party (a browser: ICE, DTLS-SRTP, rtcp-mux, RFC 8829/8834) and
the rest of a call, which speaks plain RTP. The call engine anchors every party's SDP
on the relay (offer_answer.py); these turn an anchored description into the flavour its
receiver speaks: ``to_plain`` what a browser sent, for a phone or a trunk; ``to_webrtc``
what a phone or trunk sent, for a browser, with our ICE-lite credentials, our one host
candidate and our certificate's fingerprint. Codecs pass through unchanged (browsers
and phones share G.711, G.722, Opus and telephone-event), so media is relayed, not
transcoded."""

from __future__ import annotations

from dataclasses import dataclass

from nuage.media import sdp

WEBRTC_PROTO = "UDP/TLS/RTP/SAVPF"
PLAIN_PROTO = "RTP/AVP"

# Attributes that only mean something between WebRTC endpoints (or name the browser's
# own addresses, streams and header extensions): a plain party never sees them.
_WEBRTC_ONLY = frozenset(
    {
        "candidate",
        "end-of-candidates",
        "extmap",
        "extmap-allow-mixed",
        "fingerprint",
        "group",
        "ice-lite",
        "ice-options",
        "ice-pwd",
        "ice-ufrag",
        "mid",
        "msid",
        "msid-semantic",
        "rtcp-fb",
        "rtcp-mux",
        "rtcp-mux-only",
        "rtcp-rsize",
        "setup",
        "ssrc",
        "ssrc-group",
        "tls-id",
    }
)
# Codecs that only make sense to a browser's own stack (redundancy, retransmission,
# forward error correction): offered to a phone they would only confuse it.
_BROWSER_ONLY_CODECS = frozenset({"red", "rtx", "ulpfec", "flexfec-03"})


@dataclass(frozen=True, slots=True)
class LocalParameters:
    """What our SDP tells a browser about our end of its leg."""

    ufrag: str
    pwd: str
    fingerprint: str  # sha-256 of our certificate


@dataclass(frozen=True, slots=True)
class RemoteParameters:
    """What a browser's SDP tells about its end."""

    ufrag: str
    pwd: str
    fingerprint: tuple[str, str]  # (algorithm, value)
    setup: str  # "actpass", "active" or "passive"


def is_webrtc(description: sdp.SessionDescription) -> bool:
    """Whether the description's audio is DTLS-SRTP (a browser's)."""
    audio = _audio(description)
    return audio is not None and "SAVP" in audio.proto.upper() and "TLS" in audio.proto.upper()


def remote_parameters(description: sdp.SessionDescription) -> RemoteParameters:
    """The browser's ICE credentials, fingerprint and DTLS role (each from the audio
    section, else the session); SdpError when one is missing."""
    audio = _audio(description)
    if audio is None:
        raise sdp.SdpError("no audio section")

    def value(name: str) -> str:
        for attribute in (*audio.attributes, *description.attributes):
            if attribute.name == name and attribute.value:
                return attribute.value.strip()
        raise sdp.SdpError(f"a WebRTC offer needs a={name}")

    algorithm, _, fingerprint = value("fingerprint").partition(" ")
    setup = value("setup").lower()
    if setup not in ("actpass", "active", "passive"):
        raise sdp.SdpError(f"a=setup:{setup} is not a DTLS role")
    return RemoteParameters(value("ice-ufrag"), value("ice-pwd"), (algorithm, fingerprint), setup)


def our_setup(their_setup: str) -> tuple[str, bool]:
    """Our a=setup answering theirs, and whether that makes us the DTLS client. We take
    the passive role whenever we may (RFC 8842: the offerer's actpass lets the answerer
    choose): the browser then starts the handshake as soon as ICE completes."""
    if their_setup == "passive":
        return "active", True
    return "passive", False


def to_plain(description: sdp.SessionDescription) -> sdp.SessionDescription:
    """A browser's (anchored) description as a plain RTP party takes it: RTP/AVP, none
    of WebRTC's attributes, none of the browser-only codecs."""
    result = sdp.copy_description(description)
    result.attributes = [a for a in result.attributes if a.name not in _WEBRTC_ONLY]
    for media in result.media:
        media.attributes = [a for a in media.attributes if a.name not in _WEBRTC_ONLY]
        if media.media != "audio":
            continue
        media.proto = PLAIN_PROTO
        dropped = {
            str(pt)
            for pt, codec in media.rtpmaps.items()
            if codec.encoding.lower() in _BROWSER_ONLY_CODECS
        }
        media.formats = [fmt for fmt in media.formats if fmt not in dropped]
        media.attributes = [
            a
            for a in media.attributes
            if a.name not in ("rtpmap", "fmtp") or (a.value or "").split(" ", 1)[0] not in dropped
        ]
    return result


def to_webrtc(
    description: sdp.SessionDescription,
    local: LocalParameters,
    *,
    setup: str,
    mids: list[str | None],
) -> sdp.SessionDescription:
    """An (anchored) plain description as a browser takes it: the audio section in
    DTLS-SRTP with rtcp-mux, our ICE-lite credentials and host candidate (the section's
    own address and port, the relay's), ``setup`` as our DTLS role; ``mids`` names each
    section (the browser's offer's, in an answer; ours, in an offer), bundled."""
    if len(mids) != len(description.media):
        raise ValueError(f"{len(mids)} mids for {len(description.media)} media sections")
    result = sdp.copy_description(description)
    result.attributes = [a for a in result.attributes if a.name not in _WEBRTC_ONLY]
    result.attributes.append(sdp.Attribute("ice-lite"))
    sections = list(zip(result.media, mids, strict=True))
    bundled = [mid for media, mid in sections if mid and not media.rejected]
    if bundled:
        result.attributes.append(sdp.Attribute("group", "BUNDLE " + " ".join(bundled)))
    for media, mid in sections:
        media.attributes = [
            a for a in media.attributes if a.name not in _WEBRTC_ONLY and a.name != "rtcp"
        ]
        if mid is not None:
            media.attributes.insert(0, sdp.Attribute("mid", mid))
        if media.media != "audio" or media.rejected:
            continue
        media.proto = WEBRTC_PROTO
        connection = media.connection or result.connection
        assert connection is not None, "an anchored description has its address"
        media.attributes += [
            sdp.Attribute("rtcp-mux"),
            sdp.Attribute("ice-ufrag", local.ufrag),
            sdp.Attribute("ice-pwd", local.pwd),
            sdp.Attribute("fingerprint", f"sha-256 {local.fingerprint}"),
            sdp.Attribute("setup", setup),
            sdp.Attribute(
                "candidate", f"1 1 udp 2130706431 {connection.address} {media.port} typ host"
            ),
            sdp.Attribute("end-of-candidates"),
        ]
    return result


def mids_of(description: sdp.SessionDescription) -> list[str | None]:
    """Each section's a=mid (None where it has none)."""
    return [
        next((a.value for a in media.attributes if a.name == "mid"), None)
        for media in description.media
    ]


def _audio(description: sdp.SessionDescription) -> sdp.MediaDescription | None:
    return next((m for m in description.media if m.media == "audio" and not m.rejected), None)
