"""Audio codecs by RTP encoding name: G.711 (PCMU, PCMA), G.722 and Opus.

The media engine works on 8 kHz mono 16-bit PCM in 20 ms frames of ``FRAME_SAMPLES``
samples, whatever the codec: an ``Encoder`` turns one such frame into one RTP payload, a
``Decoder`` turns one payload back into 8 kHz PCM. G.722 and Opus carry state from one
frame to the next, so every stream (each direction of each call) needs its own instance
from ``encoder_for`` / ``decoder_for``. G.711 is stateless table look-ups (g711.py).

G.722 and Opus go through PyAV (FFmpeg's ``g722`` and ``libopus``). Rates are changed
here with numpy windowed-sinc filters rather than by PyAV: handed 8 kHz frames, PyAV's
encoder-side resampler holds the first frame back (its filter delay leaves it short of a
full codec frame), which would cost the first RTP packet and shift every later one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import av
import numpy as np
import numpy.typing as npt

from nuage.media import g711
from nuage.media.g711 import Pcm

SAMPLE_RATE = 8000
"""The engine's PCM rate: what encoders take and decoders return."""

FRAME_SAMPLES = 160
"""One 20 ms frame at ``SAMPLE_RATE``."""

_Float = npt.NDArray[np.float64]
_AvCodec = Literal["g722", "libopus"]


class CodecError(ValueError):
    """A payload the decoder cannot make sense of: the only exception ``decode`` raises.

    Callers drop the packet (and conceal it) and keep the call going.
    """


class UnsupportedCodecError(ValueError):
    """An encoding, clock rate or channel count this server cannot encode or decode."""


class Encoder(Protocol):
    def encode(self, pcm: Pcm) -> bytes:
        """One RTP payload for exactly one 20 ms frame (``FRAME_SAMPLES`` int16 samples).

        A frame of another shape or type is a programming error: ``ValueError``.
        """
        ...


class Decoder(Protocol):
    def decode(self, payload: bytes) -> Pcm:
        """8 kHz mono PCM for one RTP payload: ``FRAME_SAMPLES`` for 20 ms, as many as it
        holds otherwise (none for an empty payload). Raises only ``CodecError``."""
        ...


def _check_frame(pcm: Pcm) -> None:
    if pcm.shape != (FRAME_SAMPLES,) or pcm.dtype != np.int16:
        raise ValueError(f"expected {FRAME_SAMPLES} int16 samples, got {pcm.dtype} {pcm.shape}")


def _to_pcm(samples: _Float) -> Pcm:
    return np.rint(samples).clip(-32768, 32767).astype(np.int16)


def _lowpass(rate: int) -> _Float:
    """A linear-phase low-pass for ``rate`` that keeps what an 8 kHz signal can hold.

    Flat to 3.4 kHz, -60 dB past 4.6 kHz: what the 4-4.6 kHz band lets through folds
    back above 3.4 kHz, outside the telephone band, and the filter stays short (1.5 ms of
    delay).
    """
    width = 2 * math.pi * (4600 - 3400) / rate
    taps = math.ceil((60 - 7.95) / (2.285 * width)) | 1
    cutoff = 4000 / rate
    n = np.arange(taps) - (taps - 1) / 2
    h: _Float = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, 5.653)
    normalised: _Float = h / h.sum()
    return normalised


class _Upsampler:
    """8 kHz to ``factor`` times that, streamed: polyphase, one matrix product a frame."""

    def __init__(self, factor: int) -> None:
        h = _lowpass(SAMPLE_RATE * factor) * factor
        padded: _Float = np.pad(h, (0, -len(h) % factor))
        # Row k holds h[k * factor + phase] for each output phase, newest input last.
        self._phases = padded.reshape(-1, factor)[::-1].copy()
        self._history: _Float = np.zeros(len(self._phases) - 1)

    def __call__(self, pcm: Pcm) -> Pcm:
        samples = np.concatenate((self._history, pcm), dtype=np.float64)
        self._history = samples[len(pcm) :]
        windows = _windows(samples, len(pcm), len(self._phases), 1)
        return _to_pcm(np.dot(windows, self._phases).ravel())


class _Downsampler:
    """``factor`` times 8 kHz down to 8 kHz, streamed, whatever length each call brings."""

    def __init__(self, factor: int) -> None:
        self._factor = factor
        self._taps = _lowpass(SAMPLE_RATE * factor)  # symmetric: no need to reverse
        self._history: _Float = np.zeros(len(self._taps) - 1)

    def __call__(self, samples: _Float) -> Pcm:
        buffer = np.concatenate((self._history, samples))
        count = max(0, (len(buffer) - len(self._taps)) // self._factor + 1)
        # Samples past the last whole step stay for the next call, keeping the phase.
        self._history = buffer[count * self._factor :]
        windows = _windows(buffer, count, len(self._taps), self._factor)
        return _to_pcm(np.dot(windows, self._taps))


def _windows(samples: _Float, count: int, width: int, step: int) -> _Float:
    """``count`` windows of ``width`` samples, ``step`` apart, over contiguous ``samples``.

    A bare ndarray over the same buffer (numpy still checks it stays inside):
    ``sliding_window_view`` and ``as_strided`` spend more in their Python code than the
    filter spends filtering.
    """
    stride = samples.itemsize
    windows: _Float = np.ndarray((count, width), np.float64, samples, 0, (stride * step, stride))
    return windows


class _G711:
    """Stateless table look-ups: one instance serves every stream."""

    def __init__(self, encode: Callable[[Pcm], bytes], decode: Callable[[bytes], Pcm]) -> None:
        self._encode = encode
        self._decode = decode

    def encode(self, pcm: Pcm) -> bytes:
        _check_frame(pcm)
        return self._encode(pcm)

    def decode(self, payload: bytes) -> Pcm:
        return self._decode(payload)


_PCMU = _G711(g711.ulaw_encode, g711.ulaw_decode)
_PCMA = _G711(g711.alaw_encode, g711.alaw_decode)


class _AvEncoder:
    """A PyAV encoder fed mono s16 frames at its own rate, one codec frame per call.

    g722 and libopus encode each frame as it comes, so every call yields one packet; their
    lookahead shows as a few ms of leading silence in the decoded audio, not as a missing
    packet.
    """

    def __init__(
        self,
        codec: _AvCodec,
        rate: int,
        *,
        upsampler: _Upsampler | None = None,
        bit_rate: int | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        self._context = av.CodecContext.create(codec, "w")
        self._context.sample_rate = rate
        self._context.layout = "mono"
        self._context.format = "s16"
        if bit_rate is not None:
            self._context.bit_rate = bit_rate
        if options:
            self._context.options = options
        self._context.open()
        self._rate = rate
        self._upsampler = upsampler

    def encode(self, pcm: Pcm) -> bytes:
        _check_frame(pcm)
        samples = pcm if self._upsampler is None else self._upsampler(pcm)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        packets = self._context.encode(frame)
        if len(packets) != 1:
            # A codec that buffers would skew every RTP timestamp after it: fail loudly.
            raise RuntimeError(f"{self._context.name} gave {len(packets)} packets for a frame")
        return bytes(packets[0])


class _AvDecoder:
    """A PyAV decoder to mono s16, brought down to 8 kHz."""

    def __init__(self, codec: _AvCodec, factor: int) -> None:
        self._context = av.CodecContext.create(codec, "r")
        # libopus mixes a stereo stream down to the layout asked for.
        self._context.layout = "mono"
        self._context.open()
        self._downsampler = _Downsampler(factor)

    def decode(self, payload: bytes) -> Pcm:
        if not payload:
            # An empty packet tells FFmpeg the stream ended: the decoder would refuse
            # every packet after it.
            return np.zeros(0, dtype=np.int16)
        try:
            frames = self._context.decode(av.Packet(payload))
        except av.FFmpegError as error:
            raise CodecError(f"{self._context.name}: {error}") from error
        samples = [frame.to_ndarray().reshape(-1) for frame in frames]
        return self._downsampler(np.concatenate([np.zeros(0), *samples]))


def _g722_encoder() -> Encoder:
    return _AvEncoder("g722", 16000, upsampler=_Upsampler(2))


def _opus_encoder() -> Encoder:
    # Fed at 8 kHz, libopus codes narrowband: all there is to send, at the least cost.
    # VBR (its default) around 24 kbit/s suits voice; FEC stays off (it needs the
    # peer's loss rate). DTX is libopus's default off; this FFmpeg has no option for it.
    return _AvEncoder(
        "libopus",
        SAMPLE_RATE,
        bit_rate=24000,
        options={"application": "voip", "frame_duration": "20", "fec": "0"},
    )


@dataclass(frozen=True, slots=True)
class _Codec:
    channels: frozenset[int]
    encoder: Callable[[], Encoder]
    decoder: Callable[[], Decoder]


# By (encoding name upper-cased, RTP clock rate).
_CODECS: dict[tuple[str, int], _Codec] = {
    ("PCMU", 8000): _Codec(frozenset({1}), lambda: _PCMU, lambda: _PCMU),
    ("PCMA", 8000): _Codec(frozenset({1}), lambda: _PCMA, lambda: _PCMA),
    # RFC 3551 4.5.2: G.722 samples at 16 kHz but its RTP clock runs at 8000.
    ("G722", 8000): _Codec(frozenset({1}), _g722_encoder, lambda: _AvDecoder("g722", 2)),
    # RFC 7587: SDP says opus/48000/2 whatever is sent; we send mono. Decoded by libopus,
    # not FFmpeg's own opus decoder, which returns 936 samples for the first 20 ms.
    ("OPUS", 48000): _Codec(frozenset({1, 2}), _opus_encoder, lambda: _AvDecoder("libopus", 6)),
}


def supported(encoding: str, clock_rate: int) -> bool:
    return (encoding.upper(), clock_rate) in _CODECS


def _codec(encoding: str, clock_rate: int, channels: int) -> _Codec:
    codec = _CODECS.get((encoding.upper(), clock_rate))
    if codec is None or channels not in codec.channels:
        raise UnsupportedCodecError(f"unsupported codec {encoding}/{clock_rate}/{channels}")
    return codec


def encoder_for(encoding: str, clock_rate: int, channels: int = 1) -> Encoder:
    """A new encoder for one stream (G.711's is shared: it has no state)."""
    return _codec(encoding, clock_rate, channels).encoder()


def decoder_for(encoding: str, clock_rate: int, channels: int = 1) -> Decoder:
    """A new decoder for one stream (G.711's is shared: it has no state)."""
    return _codec(encoding, clock_rate, channels).decoder()
