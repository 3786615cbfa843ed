"""Recordings as WAV files (RIFF, PCM 16-bit): a call's two directions as one stereo
file, party A on the left and party B on the right, so each side can be listened to
alone; a voicemail message as a mono one.

The file is written as the call goes, never held whole in memory: ticks append to a
buffer that goes to the file once per second of audio, so a tick costs no system call
and a second costs one write to the page cache. The slow part, fsync, happens once, in
``close`` and off the event loop. A recording is durable when ``close`` returns, and only
then may its database row be written (DESIGN.md: files before rows).
"""

from __future__ import annotations

import asyncio
import errno
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nuage.media.g711 import Pcm

FRAME_SECONDS = 0.020
MAX_SECONDS = 300.0
"""The product's limit on one recording (five minutes)."""

_SAMPLE_BYTES = 2
# The canonical 44-byte header: RIFF chunk, a 16-byte "fmt " chunk, then "data".
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_RIFF_SIZE_AT = 4
_DATA_SIZE_AT = 40
_FLUSH_SECONDS = 1.0

Opener = Callable[[Path], BinaryIO]
"""Opens the recording's file for writing; replaceable so tests can fail its writes."""


def _open_new(path: Path) -> BinaryIO:
    # Unbuffered, since the recorder buffers itself and must know exactly which bytes
    # reached the file if a write fails; "x" so an existing recording is never replaced.
    return open(path, "xb", buffering=0)


def _header(rate: int, channels: int, data_bytes: int) -> bytes:
    block = channels * _SAMPLE_BYTES
    return _HEADER.pack(
        b"RIFF",
        _HEADER.size - 8 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        channels,
        rate,
        rate * block,
        block,
        8 * _SAMPLE_BYTES,
        b"data",
        data_bytes,
    )


class WavRecorder:
    """Records ``channels`` of audio, one ``write`` per 20 ms tick, until ``max_seconds``.

    Stops by itself at the limit, or when the file cannot be written (disk full):
    ``write`` then returns False, ``finished`` is true and ``error`` says what failed,
    and the file keeps, as a valid WAV, what was written before. Either way the owner
    still calls ``close`` to make the file durable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        rate: int = 8000,
        *,
        channels: int = 2,
        max_seconds: float = MAX_SECONDS,
        opener: Opener = _open_new,
    ) -> None:
        self.path = Path(path)
        self.rate = rate
        self.channels = channels
        self._block = channels * _SAMPLE_BYTES
        self._frame_samples = round(rate * FRAME_SECONDS)
        self._max_frames = round(max_seconds * rate)
        if _HEADER.size + self._max_frames * self._block > 0xFFFFFFFF:
            raise ValueError("a WAV file cannot hold that much audio")
        self._flush_bytes = round(rate * _FLUSH_SECONDS) * self._block
        self._buffer = bytearray()
        self._accepted = 0  # frames taken by write(), buffered or written
        self._written = 0  # data bytes that reached the file
        self._error: OSError | None = None
        self._finished = False
        self._closed = False
        self._close_error: OSError | None = None
        self._closing: asyncio.Future[None] | None = None
        # Opening is set-up, not a tick: a directory that is missing or not writable
        # raises here, and there is then nothing to record into.
        self._file = opener(self.path)
        try:
            self._write_all(_header(rate, channels, 0))
        except BaseException:
            self._file.close()
            raise

    @property
    def finished(self) -> bool:
        """True once the recorder takes no more audio: limit reached, write failed, or
        closing."""
        return self._finished

    @property
    def limit_reached(self) -> bool:
        return self._accepted >= self._max_frames

    @property
    def error(self) -> OSError | None:
        """What stopped the recording early, if a write failed."""
        return self._error

    @property
    def seconds(self) -> float:
        """Audio recorded so far (after a failed write: what the file keeps)."""
        return self._accepted / self.rate

    def write(self, *frames: Pcm | None) -> bool:
        """Add one tick: a frame per channel (in a call: what party A said, then party
        B); ``None`` is silence on that channel, so the channels stay aligned in time.
        The tick lasts as long as the longest frame (20 ms when all are ``None``); the
        shorter are padded with silence. Returns whether the recorder still takes audio
        after this tick."""
        if len(frames) != self.channels:
            raise ValueError(f"{len(frames)} frames for {self.channels} channels")
        if self._finished:
            return False
        heard = [len(pcm) for pcm in frames if pcm is not None]
        samples = max(heard) if heard else self._frame_samples
        samples = min(samples, self._max_frames - self._accepted)
        block = np.zeros((samples, self.channels), dtype="<i2")
        for channel, pcm in enumerate(frames):
            if pcm is not None:
                used = min(len(pcm), samples)
                block[:used, channel] = pcm[:used]
        self._buffer += block.tobytes()
        self._accepted += samples
        if len(self._buffer) >= self._flush_bytes:
            self._flush()
        if self.limit_reached:
            self._finished = True
        return not self._finished

    def close_sync(self) -> None:
        """Write what is buffered, set the header's sizes, then fsync the file and its
        directory. Blocks (fsync can take long): from the event loop, use ``close``.
        Raises ``OSError`` when the recording could not be made durable; a disk that
        filled up during the call is not that (see ``error``). Calling it again does
        nothing, or raises the same error again: a retry must not pass for success."""
        if self._closed:
            if self._close_error is not None:
                raise self._close_error
            return
        self._closed = self._finished = True
        try:
            self._make_durable()
        except OSError as error:
            self._close_error = error
            raise

    def _make_durable(self) -> None:
        try:
            if self._buffer:
                self._flush()
            # A failed write may have left part of a sample frame: the header counts
            # whole frames and the file is cut to match.
            data_bytes = self._written - self._written % self._block
            header = _header(self.rate, self.channels, data_bytes)
            self._file.seek(_RIFF_SIZE_AT)
            self._write_all(header[_RIFF_SIZE_AT : _RIFF_SIZE_AT + 4])
            self._file.seek(_DATA_SIZE_AT)
            self._write_all(header[_DATA_SIZE_AT:])
            if data_bytes != self._written:
                self._file.truncate(_HEADER.size + data_bytes)
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
        # The file's name is only durable once its directory is.
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def close(self) -> None:
        """``close_sync`` in a worker thread. Ticks from here on are refused at once, so
        that the loop and the thread never touch the file together."""
        if self._closing is None:
            self._finished = True
            self._closing = asyncio.ensure_future(asyncio.to_thread(self.close_sync))
        # Shielded: a caller cancelled while it waits must not cancel the shared future,
        # which later callers still wait on (the thread runs to its end either way).
        await asyncio.shield(self._closing)

    def _flush(self) -> None:
        # Taken out of the bytearray first: a view of it kept alive by the exception's
        # traceback would forbid resizing it.
        data = bytes(self._buffer)
        self._buffer.clear()
        try:
            self._write_all(data, audio=True)
        except OSError as error:
            # Not raised into the tick: the call goes on unrecorded, the file keeps what
            # reached it, and the owner reads ``error``.
            self._error = error
            self._finished = True
            self._accepted = self._written // self._block

    def _write_all(self, data: bytes, *, audio: bool = False) -> None:
        """Write all of ``data``, through short writes; with ``audio``, count in
        ``_written`` each byte as it reaches the file, so a failure midway is exact."""
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if not written:
                raise OSError(errno.EIO, "write made no progress", str(self.path))
            view = view[written:]
            if audio:
                self._written += written
