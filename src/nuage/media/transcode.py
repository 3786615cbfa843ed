"""Transcoding between two parties that share no codec: each direction is decoded and
re-encoded packet by packet, as it arrives (no jitter buffer: the receiving phone has its
own, and holding packets here would only add delay).

A direction is a listener on the sending party's relay side and sends, through the
receiving party's side, a stream of the server's own (its SSRC and sequence numbers; its
timestamps follow the sender's, rescaled to the target codec's clock, so that gaps and
silences keep their length). Telephone events pass through re-numbered into that stream.
Comfort noise and payloads of other types are dropped. The stream has its RTCP like the
server's other streams (rtcp_sender.py): sender reports, and a BYE on ``stop``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping

import numpy as np

from nuage.media.codecs import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    CodecError,
    Decoder,
    decoder_for,
    encoder_for,
    supported,
)
from nuage.media.rtcp_sender import Reception, ReportSettings
from nuage.media.rtp import HEADER, MARKER, VERSION_BITS, RtpError, RtpPacket
from nuage.media.sdp import RtpMap

_FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE


def can_transcode(codec: RtpMap) -> bool:
    return supported(codec.encoding, codec.clock_rate)


class TranscodedDirection:
    """What one party sends (``receives``: its codecs by payload type, ``events_in``: its
    telephone-event type) re-encoded in ``target`` for the other (``events_out``: the
    telephone-event type the other receives, None if it has none)."""

    def __init__(
        self,
        receives: Mapping[int, RtpMap],
        events_in: int | None,
        target: RtpMap,
        events_out: int | None,
        send: Callable[[bytes], None],
        *,
        send_rtcp: Callable[[bytes], None] | None = None,
        reports: ReportSettings | None = None,
    ) -> None:
        self._codecs = {pt: codec for pt, codec in receives.items() if can_transcode(codec)}
        self._decoders: dict[int, Decoder] = {}
        self._encoder = encoder_for(target.encoding, target.clock_rate, target.channels or 1)
        self._target = target
        self._events_in = events_in
        self._events_out = events_out
        self._send = send
        # RFC 3550 5.1: random initial SSRC, sequence number and timestamp.
        self._ssrc = secrets.randbits(32)
        self._sequence = secrets.randbits(16)
        self._last_timestamp = secrets.randbits(32)
        self._send_rtcp = send_rtcp
        settings = ReportSettings() if reports is None else reports
        self._reporter = settings.reporter(self._ssrc, target.clock_rate)
        # The sending party's stream ends here: what it looks like on arrival, for the
        # report blocks the other direction sends that party.
        self.reception = Reception(8000)
        self._step = round(target.clock_rate * _FRAME_SECONDS)
        self._pending = np.zeros(0, dtype=np.int16)
        # The sender's stream and where our timestamps stand against it.
        self._source: int | None = None
        self._offset = 0
        self._source_rate = 8000
        self._sent = 0
        self.dropped = 0

    def packet(self, data: bytes) -> None:
        """One packet from the sending party (a relay-side listener)."""
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.dropped += 1
            return
        if packet.payload_type == self._events_in:
            self._event(packet)
            return
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            self.dropped += 1  # comfort noise, a codec we cannot decode
            return
        if packet.ssrc != self._source or codec.clock_rate != self._source_rate:
            self._restart(packet, codec)
        self.reception.clock_rate = codec.clock_rate
        self.reception.rtp(packet, time.time())
        decoder = self._decoders.get(packet.payload_type)
        if decoder is None:
            decoder = self._decoders[packet.payload_type] = decoder_for(
                codec.encoding, codec.clock_rate, codec.channels or 1
            )
        try:
            pcm = decoder.decode(packet.payload)
        except CodecError:
            self.dropped += 1
            return
        # Samples left over from the previous packet start the first frame, earlier.
        leftover = len(self._pending) * self._target.clock_rate // SAMPLE_RATE
        timestamp = self._our_timestamp(packet.timestamp) - leftover
        frames = np.concatenate((self._pending, pcm)) if len(self._pending) else pcm
        whole = len(frames) // FRAME_SAMPLES * FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            frame = np.ascontiguousarray(frames[start : start + FRAME_SAMPLES])
            marker = packet.marker and start == 0
            self._emit(
                self._target.payload_type, timestamp, self._encoder.encode(frame), marker=marker
            )
            timestamp += self._step
        self._pending = frames[whole:]

    def _restart(self, packet: RtpPacket, codec: RtpMap) -> None:
        """A new sender stream (first packet, new SSRC, or codec clock change): our
        timestamps carry on from where they were."""
        self._source = packet.ssrc
        self._source_rate = codec.clock_rate
        self._offset = self._last_timestamp + self._step - self._scaled(packet.timestamp)
        self._pending = np.zeros(0, dtype=np.int16)

    def _scaled(self, timestamp: int) -> int:
        return timestamp * self._target.clock_rate // self._source_rate

    def _our_timestamp(self, timestamp: int) -> int:
        return (self._scaled(timestamp) + self._offset) & 0xFFFFFFFF

    def _event(self, packet: RtpPacket) -> None:
        if self._events_out is None or self._source is None:
            return  # the other party gets keys another way (SIP INFO, from the call)
        self._emit(
            self._events_out,
            self._our_timestamp(packet.timestamp),
            packet.payload,
            marker=packet.marker,
        )

    def _emit(self, payload_type: int, timestamp: int, payload: bytes, *, marker: bool) -> None:
        timestamp &= 0xFFFFFFFF
        header = HEADER.pack(
            VERSION_BITS,
            payload_type | (MARKER if marker or not self._sent else 0),
            self._sequence,
            timestamp,
            self._ssrc,
        )
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._last_timestamp = timestamp
        self._sent += 1
        self._send(header + payload)
        if self._send_rtcp is not None:
            report = self._reporter.sent(timestamp, len(payload), time.monotonic())
            if report is not None:
                self._send_rtcp(report)

    def report_on(self, reception: Reception) -> None:
        """Our reports to the receiving party carry a block about its own stream."""
        self._reporter.reception = reception

    def stop(self) -> None:
        """The direction ends (a hold, the call's end): its stream says BYE."""
        if self._send_rtcp is not None:
            bye = self._reporter.bye(time.monotonic())
            if bye is not None:
                self._send_rtcp(bye)
            self._send_rtcp = None
