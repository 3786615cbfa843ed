"""Tones in, tones out: make test WAVs and tell by content which tone a recording holds.

Each party of a call sends its own tone; a Goertzel filter per 20 ms frame then turns
what a peer received into a timeline of "whose tone, or silence" that tests can read.
"""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nuage.media.g711 import ulaw_encode

Samples = npt.NDArray[np.float64]

FRAME_MS = 20
# Frames quieter than this RMS (full scale 1.0) are silence: G.711 idle noise and
# comfort noise sit well below it, a -20 dBFS tone well above.
SILENCE_RMS = 0.005
# A candidate dominates a frame when it holds at least this share of the frame's energy.
DOMINANCE = 0.5


def tone(frequency: float, duration: float, rate: int = 8000, amplitude: float = 0.5) -> Samples:
    """A sine of `frequency` Hz lasting `duration` seconds, amplitude in full-scale units."""
    t = np.arange(round(duration * rate), dtype=np.float64) / rate
    return amplitude * np.sin(2 * math.pi * frequency * t)


def write_wav(path: Path, samples: Samples, rate: int = 8000) -> Path:
    """Write float samples in [-1, 1] as S16LE mono, the format baresip's aufile reads."""
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def write_ulaw_wav(path: Path, samples: Samples, rate: int = 8000) -> Path:
    """Float samples as a G.711 mu-law WAV (format 7): what sipp's rtp_stream sends as
    PCMU payload, byte for byte."""
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)
    data = ulaw_encode(pcm)
    fmt = struct.pack("<HHIIHH", 7, 1, rate, rate, 1, 8)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    riff += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    return path


def write_tone_wav(
    path: Path,
    frequency: float,
    duration: float = 60.0,
    rate: int = 8000,
    amplitude: float = 0.5,
) -> Path:
    """A tone WAV ready for `audio_source aufile,<path>` or sipp's rtp_stream.

    Make it outlast the call: baresip's aufile does not loop, and at its end the phone
    stops sending and, soon after, stops recording what it receives.
    """
    return write_wav(path, tone(frequency, duration, rate, amplitude), rate)


def read_wav(path: Path) -> tuple[Samples, int]:
    """Samples (first channel, floats in [-1, 1]) and rate of a 16-bit PCM WAV.

    Tolerates a WAV still being written: libsndfile fills in the RIFF and data sizes
    only when it closes the file, and the stdlib wave module rejects such a header, so
    a file read mid-call is taken to its end.
    """
    raw = path.read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    channels = rate = bits = 0
    offset = 12
    while offset + 8 <= len(raw):
        chunk_id = raw[offset : offset + 4]
        size = int.from_bytes(raw[offset + 4 : offset + 8], "little")
        body = offset + 8
        if chunk_id == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", raw, body)
            channels, rate, bits = fmt[1], fmt[2], fmt[5]
        elif chunk_id == b"data":
            if not rate:
                break
            if bits != 16:
                raise ValueError(f"{path}: {bits}-bit WAV, expected 16-bit")
            end = len(raw) if size == 0 or body + size > len(raw) else body + size
            end -= (end - body) % (2 * channels)
            pcm = np.frombuffer(raw[body:end], dtype="<i2").astype(np.float64) / 32768
            return pcm.reshape(-1, channels)[:, 0], rate
        offset = body + size + (size & 1)
    raise ValueError(f"{path}: no fmt and data chunks")


def goertzel_power(frame: Samples, rate: int, frequency: float) -> float:
    """Energy of `frame` at `frequency`, normalised so a pure tone's equals its energy."""
    n = len(frame)
    if n == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in frame.tolist():
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    # |X(f)|^2 of a sine of amplitude A over n samples is (A n / 2)^2, its energy A^2 n / 2.
    return 2 * power / n


def dominant_tone(samples: Samples, rate: int, candidates: Sequence[float]) -> float | None:
    """The candidate frequency holding most of the energy of `samples`, or None.

    None means silence, or that no candidate holds DOMINANCE of the energy (noise,
    speech, or a tone that is not a candidate).
    """
    energy = float(np.dot(samples, samples))
    if len(samples) == 0 or math.sqrt(energy / len(samples)) < SILENCE_RMS:
        return None
    powers = [goertzel_power(samples, rate, f) for f in candidates]
    best = max(range(len(candidates)), key=powers.__getitem__)
    if powers[best] < DOMINANCE * energy:
        return None
    return float(candidates[best])


def loud_frames(samples: Samples, rate: int, frame_ms: int = FRAME_MS) -> list[bool]:
    """Per whole frame: whether it holds sound at all (music, speech, a tone), not silence."""
    size = rate * frame_ms // 1000
    return [
        math.sqrt(float(np.mean(samples[start : start + size] ** 2))) >= SILENCE_RMS
        for start in range(0, len(samples) - size + 1, size)
    ]


def other_sound_frames(
    samples: Samples, rate: int, candidates: Sequence[float], frame_ms: int = FRAME_MS
) -> list[int]:
    """Indexes of the frames with sound that no candidate tone dominates (music on hold,
    speech, a beep)."""
    verdicts = timeline(samples, rate, candidates, frame_ms)
    loud = loud_frames(samples, rate, frame_ms)
    pairs = zip(verdicts, loud, strict=True)
    return [i for i, (tone, sound) in enumerate(pairs) if sound and tone is None]


def timeline(
    samples: Samples, rate: int, candidates: Sequence[float], frame_ms: int = FRAME_MS
) -> list[float | None]:
    """dominant_tone() of each whole `frame_ms` frame, in order."""
    size = rate * frame_ms // 1000
    return [
        dominant_tone(samples[start : start + size], rate, candidates)
        for start in range(0, len(samples) - size + 1, size)
    ]


def tones_in_frames(
    samples: Samples, rate: int, candidates: Sequence[float], frame_ms: int = FRAME_MS
) -> list[frozenset[float]]:
    """Per whole frame, the candidates heard together in it (a conference's mix): each
    holding at least a fifth of the frame's energy; none in silence."""
    size = rate * frame_ms // 1000
    heard = []
    for start in range(0, len(samples) - size + 1, size):
        frame = samples[start : start + size]
        energy = float(np.dot(frame, frame))
        if math.sqrt(energy / size) < SILENCE_RMS:
            heard.append(frozenset[float]())
            continue
        heard.append(
            frozenset(f for f in candidates if goertzel_power(frame, rate, f) >= energy / 5)
        )
    return heard


@dataclass(frozen=True)
class Segment:
    """A run of consecutive frames with the same verdict."""

    tone: float | None
    frames: int

    def seconds(self, frame_ms: int = FRAME_MS) -> float:
        return self.frames * frame_ms / 1000


def segments(frames: Iterable[float | None]) -> list[Segment]:
    """Collapse a timeline into runs, for readable assertion messages."""
    runs: list[Segment] = []
    for verdict in frames:
        if runs and runs[-1].tone == verdict:
            runs[-1] = Segment(verdict, runs[-1].frames + 1)
        else:
            runs.append(Segment(verdict, 1))
    return runs


def describe(frames: Sequence[float | None], frame_ms: int = FRAME_MS) -> str:
    """'1000 Hz 2.40 s, silence 0.20 s, ...' for a timeline."""
    return (
        ", ".join(
            f"{'silence' if s.tone is None else f'{s.tone:g} Hz'} {s.seconds(frame_ms):.2f} s"
            for s in segments(frames)
        )
        or "(empty)"
    )


def share(frames: Sequence[float | None], frequency: float | None) -> float:
    """Fraction of the frames whose verdict is `frequency` (None: silence/unknown)."""
    if not frames:
        return 0.0
    return sum(1 for f in frames if f == frequency) / len(frames)


def dec_files(directory: Path) -> list[Path]:
    """The received-audio files baresip's sndfile module wrote, oldest first.

    Names carry the stream's start time (dump-<YYYY-MM-DD-hh-mm-ss>-dec.wav), so name
    order is time order.
    """
    return sorted(directory.glob("dump-*-dec.wav"))


def read_received(directory: Path) -> tuple[Samples, int]:
    """All dec files of `directory` concatenated, with their common rate.

    A rate of 0 with no samples means nothing was received.
    """
    parts: list[Samples] = []
    rate = 0
    for path in dec_files(directory):
        samples, file_rate = read_wav(path)
        if rate and file_rate != rate:
            raise ValueError(f"{path}: {file_rate} Hz after {rate} Hz files")
        rate = file_rate
        parts.append(samples)
    if not parts:
        return np.zeros(0, dtype=np.float64), 0
    return np.concatenate(parts), rate


def received_timeline(
    directory: Path, candidates: Sequence[float], frame_ms: int = FRAME_MS
) -> list[float | None]:
    """Timeline of everything a baresip phone received, across all its streams."""
    samples, rate = read_received(directory)
    if rate == 0:
        return []
    return timeline(samples, rate, candidates, frame_ms)
