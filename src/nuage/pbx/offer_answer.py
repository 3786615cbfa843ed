"""Offer/answer for the call engine: a party's SDP rewritten so that media flows through
the relay, and the answers the server writes itself (hold, resume, calls it answers)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, replace

from nuage.media import sdp
from nuage.media.engine import MediaSide


class SdpRejected(Exception):
    """An offer or answer we cannot anchor; the call gets 488."""


@dataclass(frozen=True, slots=True)
class Anchored:
    """A party's SDP rewritten for the other party, and what it says of its author."""

    description: sdp.SessionDescription  # for the other party
    audio: int  # the index of the relayed audio section
    sends: bool  # the author will send audio
    receives: bool  # the author wants audio: False is a hold (sendonly, inactive, 0.0.0.0)


def anchor(description: sdp.SessionDescription, sender: MediaSide, receiver: MediaSide) -> Anchored:
    """``description`` (from the party behind ``sender``) rewritten for the party behind
    ``receiver``: the first audio stream through our relay, other streams refused.

    The sender's advertised address primes the relay; symmetric RTP latching corrects it
    from the first packet when the sender is behind NAT.
    """
    try:
        endpoints = description.remote_endpoints()
    except sdp.SdpError as exc:
        raise SdpRejected(str(exc)) from None
    audio = next(
        (
            index
            for index, media in enumerate(description.media)
            if media.media == "audio" and endpoints[index] is not None
        ),
        None,
    )
    if audio is None:
        raise SdpRejected("No audio stream offered")
    first = endpoints[audio]
    assert first is not None
    sender.set_remote(first.host, first.rtp_port, first.rtcp_port)
    ports = [receiver.rtp_port if i == audio else 0 for i in range(len(description.media))]
    direction = description.media_direction(description.media[audio])
    # c=0.0.0.0 is RFC 2543's way to hold, still sent by some phones (RFC 6337 5.3).
    receives = direction.receives and not unspecified(first.host)
    return Anchored(
        sdp.anchor(description, receiver.local_address, ports), audio, direction.sends, receives
    )


def unspecified(host: str) -> bool:
    return host in ("0.0.0.0", "::")


def local_answer(
    offer: sdp.SessionDescription, audio: int, last_sent: sdp.SessionDescription
) -> sdp.SessionDescription:
    """Our own answer to a re-offer we do not pass on (hold, resume, refresh while held):
    what we last sent that party, a version later, with the codecs it still offers and
    the direction the offer asks for. Other sections are refused."""
    answer = sdp.bump_version(last_sent)
    ours = next((m for m in answer.media if m.media == "audio" and not m.rejected), None)
    if ours is None:
        raise SdpRejected("No audio stream to answer with")
    offered = offer.media[audio]
    formats = [fmt for fmt in ours.formats if fmt in offered.formats]
    if not any(is_audio_codec(ours, fmt) for fmt in formats):
        raise SdpRejected("The re-offer drops the call's codec")
    ours.formats = formats
    ours.direction = sdp.answer_direction(offer.media_direction(offered))
    answer.media = [
        ours if index == audio else replace(media, port=0, attributes=list(media.attributes))
        for index, media in enumerate(offer.media)
    ]
    return answer


def own_answer(
    offer: sdp.SessionDescription, side: MediaSide, usable: Callable[[sdp.RtpMap], bool]
) -> tuple[sdp.SessionDescription, sdp.RtpMap]:
    """Our answer to an offer we terminate (the server answers the call itself): the
    first offered codec that is ``usable``, with telephone-event if offered, on ``side``
    (which learns from the offer where to send); and that codec."""
    anchored = anchor(offer, side, side)
    answer = anchored.description
    audio = answer.media[anchored.audio]
    codec = next((c for c in audio.codecs if usable(c)), None)
    if codec is None:
        raise SdpRejected("None of the offered codecs can be played")
    kept = {str(codec.payload_type)}
    events = event_payload_type(offer)
    if events is not None:
        kept.add(str(events))
    audio.formats = [fmt for fmt in audio.formats if fmt in kept]
    audio.attributes = [
        attribute
        for attribute in audio.attributes
        if attribute.name not in ("rtpmap", "fmtp")
        or (attribute.value or "").split(" ", 1)[0] in kept
    ]
    audio.direction = sdp.answer_direction(offer.media_direction(offer.media[anchored.audio]))
    answer.origin = replace(
        answer.origin, username="nuage", session_id=str(secrets.randbits(48)), version=1
    )
    answer.media = [
        media if index == anchored.audio else replace(media, port=0)
        for index, media in enumerate(answer.media)
    ]
    return answer, codec


# What we offer a callee on top of the caller's codecs when the two share none (in this
# order of preference); Opus takes a free dynamic payload type.
_TRANSCODABLE = (
    sdp.RtpMap(9, "G722", 8000),
    sdp.RtpMap(0, "PCMU", 8000),
    sdp.RtpMap(8, "PCMA", 8000),
    sdp.RtpMap(-1, "opus", 48000, 2),
)


def _codec_key(codec: sdp.RtpMap) -> tuple[str, int]:
    return codec.encoding.upper(), codec.clock_rate


def _rtpmap(payload_type: int, codec: sdp.RtpMap) -> sdp.Attribute:
    channels = f"/{codec.channels}" if codec.channels else ""
    return sdp.Attribute("rtpmap", f"{payload_type} {codec.encoding}/{codec.clock_rate}{channels}")


def with_transcodable(
    offer: sdp.SessionDescription, usable: Callable[[sdp.RtpMap], bool]
) -> sdp.SessionDescription | None:
    """``offer`` (anchored for the callee) with the codecs we can transcode to that it
    lacks, after its own; None when none of its codecs is ``usable`` (nothing to
    transcode from) or it already has them all."""
    result = sdp.copy_description(offer)
    audio = audio_section(result)
    if audio is None or not any(usable(codec) for codec in audio.codecs):
        return None
    have = {_codec_key(codec) for codec in audio.codecs}
    taken = {int(fmt) for fmt in audio.formats if fmt.isdigit()}
    added = False
    for codec in _TRANSCODABLE:
        if _codec_key(codec) in have or not usable(codec):
            continue
        payload_type = codec.payload_type
        if payload_type < 0:
            payload_type = next(pt for pt in range(96, 128) if pt not in taken)
        if payload_type in taken:
            continue
        taken.add(payload_type)
        audio.formats.append(str(payload_type))
        audio.attributes.append(_rtpmap(payload_type, codec))
        added = True
    return result if added else None


def transcoded_answer(
    answer: sdp.SessionDescription,
    offer: sdp.SessionDescription,
    usable: Callable[[sdp.RtpMap], bool],
) -> sdp.SessionDescription | None:
    """When the callee's ``answer`` (anchored for the caller) chose a codec the caller's
    ``offer`` lacks: that answer with the caller's first ``usable`` codec instead (and
    its telephone-event), for the server to transcode. None when no transcoding is
    needed (the callee chose one of the caller's codecs) or none is possible."""
    answered, offered = audio_section(answer), audio_section(offer)
    if answered is None or offered is None:
        return None
    chosen = next((codec for codec in answered.codecs if usable(codec)), None)
    if chosen is None or _codec_key(chosen) in {_codec_key(c) for c in offered.codecs}:
        return None
    codec = next((c for c in offered.codecs if usable(c)), None)
    if codec is None:
        return None
    result = sdp.copy_description(answer)
    audio = audio_section(result)
    assert audio is not None
    events = event_payload_type(offer)
    audio.formats = [str(codec.payload_type)]
    audio.attributes = [a for a in audio.attributes if a.name not in ("rtpmap", "fmtp")]
    audio.attributes.append(_rtpmap(codec.payload_type, codec))
    if events is not None:
        keep_telephone_event(result, offer)
    return result


def agreed_codecs(
    theirs: sdp.SessionDescription | None, ours: sdp.SessionDescription | None
) -> list[sdp.RtpMap]:
    their_audio, our_audio = audio_section(theirs), audio_section(ours)
    if their_audio is None or our_audio is None:
        return []
    return [c for c in their_audio.codecs if str(c.payload_type) in our_audio.formats]


def audio_section(description: sdp.SessionDescription | None) -> sdp.MediaDescription | None:
    if description is None:
        return None
    return next((m for m in description.media if m.media == "audio" and not m.rejected), None)


def event_payload_type(description: sdp.SessionDescription | None) -> int | None:
    """The telephone-event payload type of an SDP's audio section, if it has one."""
    audio = audio_section(description)
    if audio is None:
        return None
    return next(
        (pt for pt, codec in audio.rtpmaps.items() if codec.encoding.lower() == "telephone-event"),
        None,
    )


def offer_telephone_event(offer: sdp.SessionDescription) -> None:
    """Add telephone-event to an offer (ours, to a callee) that lacks it (RFC 4733 on
    every leg): the callee then keys events, which we pass on to a caller that knows
    only SIP INFO (F7)."""
    audio = audio_section(offer)
    if audio is None or event_payload_type(offer) is not None:
        return
    taken = {int(fmt) for fmt in audio.formats if fmt.isdigit()}
    payload_type = next((pt for pt in (101, *range(96, 128)) if pt not in taken), None)
    if payload_type is None:
        return
    audio.formats.append(str(payload_type))
    audio.attributes.append(
        _rtpmap(payload_type, sdp.RtpMap(payload_type, "telephone-event", 8000))
    )
    audio.attributes.append(sdp.Attribute("fmtp", f"{payload_type} 0-15"))


def keep_telephone_event(
    answer: sdp.SessionDescription, offer: sdp.SessionDescription | None
) -> None:
    """Make ``answer`` (ours, to the caller) agree with the caller's ``offer`` on
    telephone-event: the caller's accepted even when the callee has none (the caller then
    keys RFC 4733 events, which we pass on as SIP INFO, F7), and the one we added to the
    callee's offer (``offer_telephone_event``) left out when the caller offered none (an
    answer names only what the offer did)."""
    offered = event_payload_type(offer)
    audio = audio_section(answer)
    offered_audio = audio_section(offer)
    if audio is None:
        return
    if offered is None:
        answered = event_payload_type(answer)
        if answered is not None:
            audio.formats = [fmt for fmt in audio.formats if fmt != str(answered)]
            audio.attributes = [
                attribute
                for attribute in audio.attributes
                if attribute.name not in ("rtpmap", "fmtp")
                or (attribute.value or "").split(" ", 1)[0] != str(answered)
            ]
        return
    if offered_audio is None:
        return
    if event_payload_type(answer) is not None or str(offered) in audio.formats:
        return
    audio.formats.append(str(offered))
    audio.attributes.append(_rtpmap(offered, offered_audio.rtpmaps[offered]))
    fmtp = offered_audio.fmtp(offered)
    if fmtp:
        audio.attributes.append(sdp.Attribute("fmtp", f"{offered} {fmtp}"))


def sending_codec_only(description: sdp.SessionDescription) -> sdp.SessionDescription:
    """A copy of ``description`` whose audio section keeps only its first codec (the one
    its party sends with: RFC 3264 lets an answer list several and send any of them) and
    telephone-event. An answer standing for an offer to someone else (click-to-call,
    RFC 3725) must leave that party no other choice."""
    copy = deepcopy(description)
    audio = audio_section(copy)
    if audio is None:
        return copy
    first = next((fmt for fmt in audio.formats if is_audio_codec(audio, fmt)), None)
    events = event_payload_type(copy)
    kept = {fmt for fmt in (first, None if events is None else str(events)) if fmt is not None}
    audio.formats = [fmt for fmt in audio.formats if fmt in kept]
    audio.attributes = [
        attribute
        for attribute in audio.attributes
        if attribute.name not in ("rtpmap", "fmtp", "rtcp-fb")
        or (attribute.value or "").split(" ", 1)[0] in kept
    ]
    return copy


def same_codec(
    new: tuple[sdp.SessionDescription | None, sdp.SessionDescription | None],
    current: tuple[sdp.SessionDescription | None, sdp.SessionDescription | None],
) -> bool:
    """Whether a new party speaks the codec the other party already uses, under the same
    payload type (the relay passes packets as they are); each party given as the last
    SDP it sent us and the last we sent it."""
    chosen = next(iter(agreed_codecs(*new)), None)
    in_use = next(iter(agreed_codecs(*current)), None)
    if chosen is None or in_use is None:
        return False
    return (chosen.encoding.lower(), chosen.clock_rate, chosen.payload_type) == (
        in_use.encoding.lower(),
        in_use.clock_rate,
        in_use.payload_type,
    )


def is_audio_codec(media: sdp.MediaDescription, fmt: str) -> bool:
    codec = media.rtpmaps.get(int(fmt)) if fmt.isdigit() else None
    return codec is not None and codec.encoding.lower() not in ("telephone-event", "cn")


# What the server offers a device it calls itself (click-to-call): every codec the media
# engine plays and relays, wideband first, and telephone-event for keys.
_OWN_OFFER = (
    "m=audio {port} RTP/AVP 9 0 8 101\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)


def own_offer(side: MediaSide) -> sdp.SessionDescription:
    """The server's own offer on ``side``'s ports."""
    host = side.local_address
    family = "IP6" if ":" in host else "IP4"
    text = (
        "v=0\r\n"
        f"o=nuage {secrets.randbits(48)} 1 IN {family} {host}\r\n"
        "s=nuage\r\n"
        f"c=IN {family} {host}\r\n"
        "t=0 0\r\n"
    ) + _OWN_OFFER.format(port=side.rtp_port)
    return sdp.parse(text)
