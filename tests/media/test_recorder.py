"""Call recordings (stereo) and voicemail messages (mono), read back with the standard
library's ``wave``."""

from __future__ import annotations

import asyncio
import errno
import io
import os
import struct
import threading
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from nuage.media.engine import LocalMediaEngine
from nuage.media.g711 import Pcm
from nuage.media.recorder import WavRecorder
from nuage.media.recording import CallRecording
from nuage.media.sdp import RtpMap

from . import free_udp_port_range

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

RATE = 8000
TICK_SAMPLES = 160


def tone(frequency: float, seconds: float, amplitude: float = 8000) -> Pcm:
    t = np.arange(round(seconds * RATE)) / RATE
    return np.round(amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def ticks(pcm: Pcm) -> list[Pcm]:
    return [pcm[start : start + TICK_SAMPLES] for start in range(0, len(pcm), TICK_SAMPLES)]


def read(path: Path) -> tuple[Pcm, Pcm]:
    """The left and right channels of a WAV, checked to be what the recorder writes."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, RATE)
        data = wav.readframes(wav.getnframes())
        assert len(data) == 4 * wav.getnframes()
    samples = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
    return samples[:, 0].astype(np.int16), samples[:, 1].astype(np.int16)


def peak_frequency(pcm: Pcm) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(len(pcm), 1 / RATE)[np.argmax(spectrum)])


class CountingFile(io.FileIO):
    """A real file that counts the writes made to it."""

    writes = 0

    def write(self, data: ReadableBuffer, /) -> int:
        type(self).writes += 1
        return super().write(data)


class FullDisk(io.FileIO):
    """A file on a disk with ``room`` bytes free: writes are cut short to fit, then
    fail with ENOSPC, as write(2) does."""

    room = 0

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data)
        free = type(self).room - self.tell()
        if free <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(view[:free])


def test_each_party_comes_back_in_its_own_channel(tmp_path: Path) -> None:
    left, right = tone(1000, 2.0), tone(1500, 2.0)
    path = tmp_path / "call.wav"
    recorder = WavRecorder(path)
    for a, b in zip(ticks(left), ticks(right), strict=True):
        assert recorder.write(a, b)
    recorder.close_sync()
    got_left, got_right = read(path)
    assert np.array_equal(got_left, left) and np.array_equal(got_right, right)
    assert peak_frequency(got_left) == 1000 and peak_frequency(got_right) == 1500
    assert recorder.seconds == 2.0
    assert recorder.finished and recorder.error is None and not recorder.limit_reached


def test_the_header_is_a_canonical_pcm_wav_after_close(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = WavRecorder(path)
    for _ in range(75):
        recorder.write(None, None)
    recorder.close_sync()
    recorder.close_sync()  # again: nothing more happens
    data = path.read_bytes()
    assert len(data) == 44 + 75 * TICK_SAMPLES * 4
    riff, riff_size, wave_id, fmt, fmt_size, pcm, channels, rate = struct.unpack_from(
        "<4sI4s4sIHHI", data
    )
    byte_rate, block_align, bits, data_id, data_size = struct.unpack_from("<IHH4sI", data, 28)
    assert (riff, riff_size, wave_id) == (b"RIFF", len(data) - 8, b"WAVE")
    assert (fmt, fmt_size, pcm, channels, rate) == (b"fmt ", 16, 1, 2, RATE)
    assert (byte_rate, block_align, bits) == (RATE * 4, 4, 16)
    assert (data_id, data_size) == (b"data", len(data) - 44)
    assert not any(data[44:])


def test_silent_ticks_keep_both_sides_aligned(tmp_path: Path) -> None:
    # A speaks in even ticks, B in odd ticks, and sometimes neither does.
    frames = ticks(tone(1000, 0.4))
    path = tmp_path / "call.wav"
    recorder = WavRecorder(path)
    for index, frame in enumerate(frames):
        if index % 5 == 4:
            recorder.write(None, None)
        elif index % 2:
            recorder.write(None, frame)
        else:
            recorder.write(frame, None)
    recorder.close_sync()
    left, right = read(path)
    assert len(left) == len(right) == len(frames) * TICK_SAMPLES
    for index, frame in enumerate(frames):
        span = slice(index * TICK_SAMPLES, (index + 1) * TICK_SAMPLES)
        speaking = "-" if index % 5 == 4 else "B" if index % 2 else "A"
        silence = np.zeros_like(frame)
        assert np.array_equal(left[span], frame if speaking == "A" else silence)
        assert np.array_equal(right[span], frame if speaking == "B" else silence)


def test_a_short_frame_is_padded_with_silence(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = WavRecorder(path)
    recorder.write(tone(1000, 0.02), tone(1000, 0.01))
    recorder.close_sync()
    left, right = read(path)
    assert len(left) == TICK_SAMPLES
    assert np.any(right[:80]) and not np.any(right[80:])


def test_it_stops_by_itself_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = WavRecorder(path, max_seconds=0.5)
    left, right = tone(1000, 1.0), tone(1500, 1.0)
    kept = [recorder.write(a, b) for a, b in zip(ticks(left), ticks(right), strict=True)]
    # 25 ticks make half a second: the 25th fills it and says so.
    assert kept == [True] * 24 + [False] * 26
    assert recorder.finished and recorder.limit_reached and recorder.error is None
    recorder.close_sync()
    got_left, got_right = read(path)
    assert np.array_equal(got_left, left[:4000]) and np.array_equal(got_right, right[:4000])


def test_the_default_limit_is_five_minutes(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "call.wav")
    silence = np.zeros(TICK_SAMPLES, dtype=np.int16)
    writes = 0
    while recorder.write(silence, None):
        writes += 1
    assert writes + 1 == 300 * 50
    assert recorder.seconds == 300.0
    recorder.close_sync()
    with wave.open(str(tmp_path / "call.wav"), "rb") as wav:
        assert wav.getnframes() == 300 * RATE


def test_audio_goes_to_the_file_about_once_a_second(tmp_path: Path) -> None:
    CountingFile.writes = 0
    path = tmp_path / "call.wav"
    recorder = WavRecorder(path, opener=lambda p: CountingFile(p, "xb"))
    frame = tone(1000, 0.02)
    for _ in range(49):
        recorder.write(frame, frame)
    # Only the header so far: 49 ticks are still in memory.
    assert (CountingFile.writes, path.stat().st_size) == (1, 44)
    recorder.write(frame, frame)
    assert (CountingFile.writes, path.stat().st_size) == (2, 44 + RATE * 4)
    for _ in range(450):
        recorder.write(frame, frame)
    assert CountingFile.writes == 11
    assert path.stat().st_size == 44 + 10 * RATE * 4
    recorder.close_sync()


def test_a_full_disk_stops_it_and_leaves_a_valid_file(tmp_path: Path) -> None:
    # Room for the header, 1.5 s of audio and half a sample frame.
    FullDisk.room = 44 + 12_000 * 4 + 2
    path = tmp_path / "call.wav"
    recorder = WavRecorder(path, opener=lambda p: FullDisk(p, "xb"))
    left, right = tone(1000, 3.0), tone(1500, 3.0)
    results = [recorder.write(a, b) for a, b in zip(ticks(left), ticks(right), strict=True)]
    # The second flush (two seconds in) finds the disk full: no exception in the tick.
    assert results == [True] * 99 + [False] * 51
    assert recorder.finished and not recorder.limit_reached
    assert recorder.error is not None and recorder.error.errno == errno.ENOSPC
    assert recorder.seconds == 1.5
    recorder.close_sync()
    got_left, got_right = read(path)
    assert np.array_equal(got_left, left[:12_000]) and np.array_equal(got_right, right[:12_000])
    assert path.stat().st_size == 44 + 12_000 * 4


def test_an_existing_recording_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        WavRecorder(path)
    assert path.read_bytes() == b"precious"


async def test_close_fsyncs_the_file_and_its_directory_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), threading.current_thread().name))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "call.wav"
    recorder = WavRecorder(path)
    frame = tone(1000, 0.02)
    for _ in range(30):
        recorder.write(frame, None)
    await recorder.close()
    await recorder.close()
    # Ticks after close are refused and do not touch the file.
    assert not recorder.write(frame, frame)
    assert [target for target, _ in synced] == [str(path), str(tmp_path)]
    assert all(thread != "MainThread" for _, thread in synced)
    left, _ = read(path)
    assert len(left) == 30 * TICK_SAMPLES


def test_a_recording_that_cannot_be_made_durable_says_so_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", fsync)
    recorder = WavRecorder(tmp_path / "call.wav")
    recorder.write(None, None)
    for _ in range(2):
        with pytest.raises(OSError) as raised:
            recorder.close_sync()
        assert raised.value.errno == errno.EIO
    # Not a failure of the recording itself: nothing was lost while writing.
    assert recorder.error is None


async def test_a_starved_clock_skips_ticks_but_the_recording_keeps_the_calls_length(
    tmp_path: Path,
) -> None:
    low = free_udp_port_range(8)
    engine = LocalMediaEngine("127.0.0.1", low, low + 7)
    try:
        session = await engine.create_session()
        pcmu = {0: RtpMap(0, "PCMU", 8000)}
        path = tmp_path / "call.wav"
        recording = CallRecording(
            path,
            engine.clock,
            (session.a, pcmu),
            (session.b, pcmu),
            max_seconds=60,
            on_limit=lambda: None,
        )
        started = time.monotonic()
        await asyncio.sleep(0.3)
        time.sleep(0.5)  # noqa: ASYNC251 (the point: the loop starved, no tick for 500 ms)
        await asyncio.sleep(0.3)
        await recording.stop()
        elapsed = time.monotonic() - started
    finally:
        await engine.close()
    assert engine.clock.skipped >= 15
    with wave.open(str(path)) as written:
        seconds = written.getnframes() / written.getframerate()
    assert abs(seconds - elapsed) < 0.1, (seconds, elapsed)


async def test_a_mono_recorder_writes_one_channel(tmp_path: Path) -> None:
    """Voicemail messages are mono: one frame per tick, the file's sizes match."""
    path = tmp_path / "message.wav"
    recorder = WavRecorder(path, channels=1, max_seconds=1.0)
    for frame in ticks(tone(440, 0.5)):
        assert recorder.write(frame)
    assert recorder.write(None)
    with pytest.raises(ValueError, match="2 frames for 1 channels"):
        recorder.write(None, None)
    await recorder.close()
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        assert wav.getnframes() == round(0.52 * RATE)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert abs(peak_frequency(samples[:4000].astype(np.int16)) - 440) < 5
