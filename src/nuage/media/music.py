"""Nuage's own music on hold, synthesised here: no third-party recording ships with it.

A slow progression (C, A minor, F, G, twice, the second time with a melody) played by a
soft electric-piano-like voice: a few harmonics under an exponential decay. Its notes stay
between 110 and 800 Hz, away from the DTMF high group and from the test tones (1 kHz and
up), and well under full scale so that G.711 carries it cleanly.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

BEAT = 0.5  # seconds
_A4 = 440.0
# (root, third, fifth) as semitones from A4; one chord per bar of four beats.
_CHORDS = [(-9, -5, -2), (-12, -9, -5), (-16, -12, -9), (-14, -10, -7)]
_BASS_OCTAVE = -24
# Melody of the second pass, one note (semitones from A4) or None (rest) per beat.
_MELODY = [
    3, None, 7, 5, 3, None, 0, None,
    -4, None, 0, 3, 2, None, -2, None,
]  # fmt: skip


def _note(semitones: int) -> float:
    return _A4 * 2 ** (semitones / 12)


def _voice(frequency: float, duration: float, rate: int, level: float) -> npt.NDArray[np.float64]:
    t = np.arange(round(duration * rate)) / rate
    envelope = np.exp(-3.0 * t) * np.minimum(1.0, t / 0.01)
    harmonics = sum(
        weight * np.sin(2 * math.pi * frequency * n * t)
        for n, weight in ((1, 1.0), (2, 0.35), (3, 0.12))
    )
    return level * envelope * harmonics


def render(rate: int = 8000) -> npt.NDArray[np.int16]:
    """The whole loop (16 s) as signed 16-bit mono samples at ``rate`` Hz."""
    bar = 4 * BEAT
    total = np.zeros(round(2 * len(_CHORDS) * bar * rate) + 1)

    def add(start: float, sound: npt.NDArray[np.float64]) -> None:
        first = round(start * rate)
        end = min(len(total), first + len(sound))
        total[first:end] += sound[: end - first]

    for repeat in range(2):
        for index, chord in enumerate(_CHORDS):
            start = (repeat * len(_CHORDS) + index) * bar
            add(start, _voice(_note(chord[0] + _BASS_OCTAVE + 12), 2 * bar, rate, 0.22))
            for beat, semitones in enumerate((chord[0], chord[1], chord[2], chord[1])):
                add(start + beat * BEAT, _voice(_note(semitones), 3 * BEAT, rate, 0.12))
    for beat, melody_note in enumerate(_MELODY):
        if melody_note is not None:
            add((len(_CHORDS) * 4 + beat) * BEAT, _voice(_note(melody_note), 2 * BEAT, rate, 0.14))
    total = total[: round(2 * len(_CHORDS) * bar * rate)]
    peak = float(np.max(np.abs(total)))
    # -6 dBFS peak: loud enough to be heard as music, never clipped by the codec.
    return np.round(total / peak * 0.5 * 32767).astype(np.int16)
