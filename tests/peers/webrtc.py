"""A browser's media stack for tests: aiortc (a real WebRTC implementation: full ICE,
DTLS-SRTP, Opus and G.711) with a tone for a microphone, keeping what it hears.
The signalling goes wherever the test sends the SDP (peers/websocket_phone.py)."""

from __future__ import annotations

import asyncio
import fractions

import aioice.ice
import numpy as np
import numpy.typing as npt
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from av import AudioFrame

from peers import audio

LOOPBACK = "127.0.0.1"


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiortc gathers candidates on every interface but loopback; tests stay on it."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [LOOPBACK])


class Tone(MediaStreamTrack):
    """A microphone: a sine at 48 kHz in 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self._frequency = frequency
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._samples / 48000
        await asyncio.sleep(max(0.0, due - loop.time()))
        t = (np.arange(960) + self._samples) / 48000
        pcm = (np.sin(2 * np.pi * self._frequency * t) * 12000).astype("<i2")
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, 48000)
        self._samples += 960
        return frame


class Browser:
    """One peer connection speaking ``frequency``; ``heard`` keeps what it receives, as
    (samples, sample rate) per frame."""

    def __init__(self, frequency: float) -> None:
        self.connection = RTCPeerConnection()
        self.connection.addTrack(Tone(frequency))
        self.heard: list[tuple[npt.NDArray[np.int16], int]] = []
        self._listening: list[asyncio.Task[None]] = []
        self.connection.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        async def listen() -> None:
            while True:
                frame = await track.recv()
                # Packed samples, channels interleaved (Opus decodes to stereo): the first.
                channels = len(frame.layout.channels)
                pcm = frame.to_ndarray().reshape(-1, channels)[:, 0]
                self.heard.append((pcm, frame.sample_rate))

        self._listening.append(asyncio.ensure_future(listen()))

    async def offer(self) -> str:
        await self.connection.setLocalDescription(await self.connection.createOffer())
        return self.connection.localDescription.sdp

    async def answer(self, offer: str) -> str:
        await self.connection.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self.connection.setLocalDescription(await self.connection.createAnswer())
        return self.connection.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.connection.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def tone(self, candidates: tuple[float, ...], last_frames: int = 40) -> float | None:
        """The tone that dominates the last frames heard."""
        frames = self.heard[-last_frames:]
        if not frames:
            return None
        rate = frames[-1][1]
        samples = np.concatenate([pcm for pcm, _ in frames]).astype(np.float64) / 32768
        return audio.dominant_tone(samples, rate, candidates)

    async def close(self) -> None:
        for task in self._listening:
            task.cancel()
        await self.connection.close()
