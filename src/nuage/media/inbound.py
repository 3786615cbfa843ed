"""What one party sends, as the server hears it where it terminates media (a recording,
a conference): tapped RTP packets in, one decoded 20 ms frame per clock tick out.

Packets arrive with jitter and the clock wants one frame per tick, so this is where the
jitter buffer sits; the relay itself stays unbuffered (DESIGN.md, media/).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

import numpy as np

from nuage.media import g711
from nuage.media.codecs import CodecError, Decoder, decoder_for, supported
from nuage.media.dtmf import InbandDtmfDetector
from nuage.media.jitter import Concealer, JitterBuffer
from nuage.media.rtcp_sender import Reception
from nuage.media.rtp import RtpError, RtpPacket
from nuage.media.sdp import RtpMap

FRAME_SAMPLES = 160  # 20 ms at 8 kHz, the rate of everything the server mixes or records


def can_decode(codec: RtpMap) -> bool:
    return supported(codec.encoding, codec.clock_rate)


class InboundAudio:
    """One party's audio: feed it the RTP packets the party sends (``packet``), take one
    frame per tick (``frame``). ``codecs`` are what the party may send, by payload type;
    packets of any other type (telephone events, comfort noise) are ignored. With
    ``reception``, its audio packets are also counted there for RTCP."""

    def __init__(self, codecs: Mapping[int, RtpMap], reception: Reception | None = None) -> None:
        # One decoder per codec of this stream: G.722's and Opus's carry state.
        self._decoders = {
            payload_type: decoder_for(codec.encoding, codec.clock_rate, codec.channels or 1)
            for payload_type, codec in codecs.items()
            if can_decode(codec)
        }
        self._buffer = JitterBuffer()
        self._concealer = Concealer()
        self._decoder: Decoder | None = None
        self._reception = reception
        self._loop = asyncio.get_running_loop()

    def packet(self, data: bytes) -> None:
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        decoder = self._decoders.get(packet.payload_type)
        if decoder is None:
            return
        self._decoder = decoder
        self._buffer.push(packet, self._loop.time())
        if self._reception is not None:
            self._reception.rtp(packet, time.time())

    def frame(self, now: float) -> g711.Pcm | None:
        """The frame due at ``now``: decoded, concealed when lost while the party talks,
        None while it sends nothing."""
        payload = self._buffer.pop(now)
        if payload is None or self._decoder is None:
            return self._concealer.fill(None) if self._buffer.playing else None
        try:
            pcm = self._decoder.decode(payload)
        except CodecError:
            return self._concealer.fill(None)  # a corrupt packet is a lost one
        return self._concealer.fill(_fit(pcm))


def _fit(pcm: g711.Pcm) -> g711.Pcm:
    """A frame of exactly 20 ms: a phone sending 30 ms packets (ptime) is cut or padded
    rather than breaking the frame arithmetic downstream; only that phone sounds worse."""
    if len(pcm) == FRAME_SAMPLES:
        return pcm
    fitted = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    fitted[: min(len(pcm), FRAME_SAMPLES)] = pcm[:FRAME_SAMPLES]
    return fitted


class InbandKeys:
    """Keys a party sends as tones in its audio (a phone or carrier with neither RFC 4733
    nor SIP INFO), heard where the server terminates its media (a voice menu). Fed the
    party's RTP packets as they come: a key is a tone pair over a few frames, which the
    detector finds without a jitter buffer."""

    def __init__(self, codecs: Mapping[int, RtpMap], on_key: Callable[[str], None]) -> None:
        self._decoders = {
            payload_type: decoder_for(codec.encoding, codec.clock_rate, codec.channels or 1)
            for payload_type, codec in codecs.items()
            if can_decode(codec)
        }
        self._detector = InbandDtmfDetector()
        self._on_key = on_key

    def packet(self, data: bytes) -> None:
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        decoder = self._decoders.get(packet.payload_type)
        if decoder is None:
            return
        try:
            pcm = decoder.decode(packet.payload)
        except CodecError:
            return
        for key in self._detector.feed(pcm):
            self._on_key(key)
