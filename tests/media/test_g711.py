"""G.711 tables against CPython's audioop (the C reference implementation shipped with
Python 3.11) over every 16-bit sample and every code."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nuage.media import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = bytes(range(256))


@pytest.mark.parametrize(
    ("encode", "reference"),
    [(g711.ulaw_encode, audioop.lin2ulaw), (g711.alaw_encode, audioop.lin2alaw)],
)
def test_encoding_matches_the_reference_for_every_sample(encode, reference) -> None:  # type: ignore[no-untyped-def]
    assert encode(EVERY_SAMPLE) == reference(EVERY_SAMPLE.tobytes(), 2)


@pytest.mark.parametrize(
    ("decode", "reference"),
    [(g711.ulaw_decode, audioop.ulaw2lin), (g711.alaw_decode, audioop.alaw2lin)],
)
def test_decoding_matches_the_reference_for_every_code(decode, reference) -> None:  # type: ignore[no-untyped-def]
    assert decode(EVERY_CODE).tobytes() == reference(EVERY_CODE, 2)


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_a_tone_survives_a_round_trip(encode, decode) -> None:  # type: ignore[no-untyped-def]
    t = np.arange(160) / 8000
    tone = np.round(8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    back = decode(encode(tone)).astype(np.float64)
    error = back - tone
    # G.711 keeps a signal-to-quantisation-noise ratio above 30 dB at this level.
    assert 10 * np.log10(np.sum(tone.astype(np.float64) ** 2) / np.sum(error**2)) > 30
