"""G.711 μ-law (PCMU) and A-law (PCMA) by table look-up (ITU-T G.711, RFC 3551 4.5.14).

Decoding is one 256-entry table, encoding one 65 536-entry table indexed by the 16-bit
sample: a frame of 160 samples is two numpy look-ups, whatever its content.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]
"""Signed 16-bit linear samples, mono."""

_BIAS = 0x84
_CLIP = 32635


def _ulaw_decode_table() -> Pcm:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> Pcm:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    # In A-law a set sign bit means positive.
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    # On 14-bit samples, as G.711 defines μ-law (the two low bits never matter).
    samples = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(samples < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(samples), _CLIP >> 2) + (_BIAS >> 2)
    segment = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0, 7)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    table: npt.NDArray[np.uint8] = (((segment << 4) | mantissa) ^ mask).astype(np.uint8)
    return table


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    samples = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(samples >= 0, 0x80, 0)
    # A-law works on 13-bit magnitudes.
    magnitude = np.minimum(np.where(samples >= 0, samples, -samples - 1) >> 3, 0x0FFF)
    exponent = np.where(
        magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4
    )
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    table: npt.NDArray[np.uint8] = ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)
    return table


_ULAW_DECODE = _ulaw_decode_table()
_ALAW_DECODE = _alaw_decode_table()
_ULAW_ENCODE = _ulaw_encode_table()
_ALAW_ENCODE = _alaw_encode_table()


def _table_index(pcm: Pcm) -> npt.NDArray[np.int32]:
    return pcm.astype(np.int32) + 32768


def ulaw_encode(pcm: Pcm) -> bytes:
    return _ULAW_ENCODE[_table_index(pcm)].tobytes()


def ulaw_decode(payload: bytes) -> Pcm:
    return _ULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]


def alaw_encode(pcm: Pcm) -> bytes:
    return _ALAW_ENCODE[_table_index(pcm)].tobytes()


def alaw_decode(payload: bytes) -> Pcm:
    return _ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)]
