"""In-call features under load: calls on hold hearing music, and calls being recorded.

Both play the two ends of bench/media.py (the carrier at 127.0.0.2 calls the company
number, user 1001's phone answers; ``Peers``), with these additions:

- hold: once N calls are up, the same calls first relay RTP both ways for a window (the
  baseline); then the phone (the user) re-INVITEs each call with ``a=sendonly``. Nuage
  answers that re-INVITE itself, and the carrier's party, unaware, hears music on hold
  streamed by the server while it goes on sending its own RTP (50 packets/s per call,
  which Nuage drops: the holder hears nothing). The phone sends no RTP once holding. The
  carrier's socket follows each call's music stream (by the server port it comes from):
  packets received against 50 a second, the RTP sequence numbers the server used, and
  the inter-arrival deviation from 20 ms. The phone counts what it still receives.
- record: once N calls are up, the phone keys "*" then "1" (FEATURE_RECORD) in each, as
  SIP INFO application/dtmf-relay: the recording belongs to the user's leg, and the
  phone is that leg (calls come from the trunk to 1001). When /healthz says N recordings
  are active, RTP flows both ways for the windows (media.py's window: loss of the relayed
  RTP, server CPU); then the phone hangs up each call (BYE) and the WAV files under
  data/recordings/<company>/ are read back: how many, their format, their length against
  the time from the "1" being answered to the BYE, and how many seconds of each channel
  hold the RTP sent (the generator's payload is all 0x00, which G.711 u-law decodes to
  a sample far from 0, so a non-zero sample is a recorded packet, or the concealment of
  a missing one).
"""

from __future__ import annotations

import asyncio
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.media import (
    Arrivals,
    Call,
    MediaRun,
    Message,
    Numbering,
    Peers,
    Senders,
    blast,
    latch,
    paced,
    peers,
    window,
)
from bench.stats import machine_busy_seconds, median

# re-INVITEs, INFO pairs and BYEs per second: well below the server's set-up rate.
REQUEST_RATE = 200.0
DTMF_RELAY = "application/dtmf-relay"


def _dtmf_relay(digit: str) -> str:
    # As nuage.media.dtmf.build_dtmf_relay writes it (the generator does not import the
    # server's code): 160 ms, a short press.
    return f"Signal={digit}\r\nDuration=160\r\n"


def _ok(outcome: object) -> bool:
    return isinstance(outcome, Message) and 200 <= outcome.status < 300


# --- hold ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldRun:
    """One window with every call on hold."""

    music: Arrivals  # what the held party (the carrier) received from Nuage
    holder_received: int  # packets the holding phone received (it should hear nothing)
    held_party_sent: int  # RTP the held party went on sending (dropped by Nuage)
    server_cpu_seconds: float
    generator_cpu_seconds: float  # this process's (both ends)
    machine_busy_seconds: float  # every process (the machine is shared)
    calls_lost: int

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.server_cpu_seconds / self.music.seconds

    @property
    def generator_cpu_percent(self) -> float:
        return 100.0 * self.generator_cpu_seconds / self.music.seconds

    @property
    def machine_busy_percent(self) -> float:
        return 100.0 * self.machine_busy_seconds / self.music.seconds


@dataclass
class HoldPoint:
    calls: int
    established: int
    held: int  # re-INVITEs answered 2xx
    on_hold: int  # /healthz calls_on_hold before the windows
    rss_kib: int
    relayed: list[MediaRun] = field(default_factory=list)
    runs: list[HoldRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def loss_percent(self) -> float:
        return median([run.music.loss_percent for run in self.runs])

    @property
    def clean(self) -> bool:
        return self.held == self.on_hold == self.calls and bool(self.runs)


@dataclass
class HoldResult:
    points: list[HoldPoint]
    seconds: float
    command: str
    rss_idle_kib: int


async def _music_window(
    ends: Peers, calls: list[Call], seconds: float, numbering: Numbering
) -> HoldRun:
    senders: Senders = [(ends.carrier_rtp.socket, c.remote_media) for c in calls if c.remote_media]
    sources = [c.remote_media for c in calls if c.remote_media]
    await latch(senders, numbering)
    ends.phone_rtp.reset()
    ends.carrier_rtp.reset(follow=True)
    lost_before = ends.carrier.hung_up_by_server
    cpu_before, own_before = ends.server.cpu_seconds(), time.process_time()
    busy_before, since = machine_busy_seconds(), time.monotonic()
    sent, _ = await blast(senders, seconds, numbering)
    music = ends.carrier_rtp.arrivals(sources, since)
    cpu = ends.server.cpu_seconds() - cpu_before
    own, busy = time.process_time() - own_before, machine_busy_seconds() - busy_before
    lost = ends.carrier.hung_up_by_server - lost_before
    return HoldRun(music, ends.phone_rtp.received, sent, cpu, own, busy, lost)


async def measure_hold(
    workdir: Path, points: list[int], runs: int, seconds: float, command: str
) -> HoldResult:
    """For each count in `points`: that many calls, `runs` windows relayed, then the same
    calls on hold, `runs` windows of music."""
    results: list[HoldPoint] = []
    async with peers(workdir) as ends:
        receivers = (ends.carrier_rtp, ends.phone_rtp)
        seen = len(ends.server.log_problems())
        for count in points:
            calls, _ = await ends.establish(count)
            await asyncio.sleep(1.0)
            senders = ends.senders(calls)
            numbering = Numbering(len(senders))
            relayed = [
                await window(
                    senders,
                    receivers,
                    seconds,
                    ends.server,
                    ends.carrier,
                    follow=True,
                    numbering=numbering,
                )
                for _ in range(runs)
            ]
            phone = ends.phone
            holding = (
                phone.request(call_id, "INVITE", phone.hold_offer(), "application/sdp")
                for call_id in list(phone.dialogs)
            )
            held = sum(map(_ok, await paced(holding, REQUEST_RATE)))
            on_hold = await ends.wait_for("calls_on_hold", len(calls), 10.0)
            point = HoldPoint(count, len(calls), held, on_hold, ends.server.rss_kib(), relayed)
            results.append(point)
            for _ in range(runs):
                # The carrier's legs come first in `senders`: they go on with their numbering.
                point.runs.append(await _music_window(ends, calls, seconds, numbering))
            await ends.tear_down(calls)
            problems = ends.server.log_problems()
            point.problems, seen = problems[seen:], len(problems)
        rss_idle = ends.rss_idle_kib
    return HoldResult(results, seconds, command, rss_idle)


# --- record --------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingFile:
    name: str
    channels: int
    rate: int
    sample_width: int
    seconds: float
    audio_seconds: tuple[float, float]  # non-zero samples on the left (A) and right (B)

    @property
    def stereo(self) -> bool:
        return self.channels == 2 and self.rate == 8000 and self.sample_width == 2


def _read(path: Path) -> RecordingFile:
    with wave.open(str(path), "rb") as wav:
        channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
        frames = wav.getnframes()
        data = wav.readframes(frames)
    audio = (0.0, 0.0)
    if channels == 2 and width == 2:
        samples = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
        left, right = np.count_nonzero(samples, axis=0)
        audio = (int(left) / rate, int(right) / rate)
    return RecordingFile(path.name, channels, rate, width, frames / max(rate, 1), audio)


def _new_recordings(directory: Path, seen: set[str]) -> list[RecordingFile]:
    found: list[RecordingFile] = []
    for path in sorted(directory.glob("*/*.wav")):
        if path.name not in seen:
            seen.add(path.name)
            found.append(_read(path))
    return found


@dataclass
class RecordPoint:
    calls: int
    established: int
    started: int  # "*1" keyed (both INFO answered 2xx)
    recording: int  # /healthz recordings_active before the windows
    rss_kib: int
    runs: list[MediaRun] = field(default_factory=list)
    files: list[RecordingFile] = field(default_factory=list)
    spans: list[float] = field(default_factory=list)  # "1" answered to BYE sent, per call
    left_active: int = 0  # recordings_active once every call ended
    problems: list[str] = field(default_factory=list)

    @property
    def loss_percent(self) -> float:
        return median([run.loss_percent for run in self.runs])

    @property
    def shortfall_percent(self) -> tuple[float, float]:
        """How much shorter the files are than the calls' spans (from the "1" answered to
        the BYE): in total, and the worst file. Files and spans are paired in sorted
        order, as files are not named after their call; NaN when their counts differ."""
        durations = sorted(f.seconds for f in self.files)
        spans = sorted(self.spans)
        if len(durations) != len(spans) or not spans:
            return float("nan"), float("nan")
        total = 100.0 * (1 - sum(durations) / sum(spans))
        worst = max(100.0 * (s - d) / s for d, s in zip(durations, spans, strict=True))
        return total, worst

    @property
    def clean(self) -> bool:
        return (
            self.started == self.recording == self.calls
            and len(self.files) == self.calls
            and all(f.stereo for f in self.files)
            and self.left_active == 0
            and bool(self.runs)
        )


@dataclass
class RecordResult:
    points: list[RecordPoint]
    seconds: float
    command: str
    rss_idle_kib: int


async def _start_recording(ends: Peers, call_id: str) -> float:
    """The user keys *1 in the call; when the second INFO was answered (monotonic)."""
    for digit in "*1":
        response = await ends.phone.request(call_id, "INFO", _dtmf_relay(digit), DTMF_RELAY)
        if not _ok(response):
            raise RuntimeError(f"INFO {digit}: {response.first_line}")
    return time.monotonic()


async def _hang_up(ends: Peers, call_id: str) -> float:
    at = time.monotonic()
    response = await ends.phone.request(call_id, "BYE")
    if not _ok(response):
        raise RuntimeError(f"BYE: {response.first_line}")
    return at


async def measure_record(
    workdir: Path, points: list[int], runs: int, seconds: float, command: str
) -> RecordResult:
    """For each count in `points`: that many calls recorded, `runs` windows of RTP both
    ways, then hung up and their files read."""
    results: list[RecordPoint] = []
    async with peers(workdir) as ends:
        receivers = (ends.carrier_rtp, ends.phone_rtp)
        directory = ends.server.workdir / "data" / "recordings"
        files: set[str] = set()
        seen = len(ends.server.log_problems())
        for count in points:
            calls, _ = await ends.establish(count)
            dialogs = list(ends.phone.dialogs)
            starting = (_start_recording(ends, call_id) for call_id in dialogs)
            started = dict(zip(dialogs, await paced(starting, REQUEST_RATE), strict=True))
            recording = await ends.wait_for("recordings_active", len(calls), 10.0)
            ok = sum(1 for at in started.values() if isinstance(at, float))
            point = RecordPoint(count, len(calls), ok, recording, ends.server.rss_kib())
            results.append(point)
            senders = ends.senders(calls)
            # Numbered: the recorder's jitter buffer reads sequence numbers and timestamps.
            numbering = Numbering(len(senders))
            for _ in range(runs):
                run = await window(
                    senders, receivers, seconds, ends.server, ends.carrier, numbering=numbering
                )
                point.runs.append(run)
            ending = (_hang_up(ends, call_id) for call_id in dialogs)
            ended = dict(zip(dialogs, await paced(ending, REQUEST_RATE), strict=True))
            for call_id, start in started.items():
                end = ended.get(call_id)
                if isinstance(start, float) and isinstance(end, float):
                    point.spans.append(end - start)
            await ends.tear_down(calls)
            point.left_active = await ends.wait_for("recordings_active", 0, 15.0)
            point.files = await asyncio.to_thread(_new_recordings, directory, files)
            problems = ends.server.log_problems()
            point.problems, seen = problems[seen:], len(problems)
        rss_idle = ends.rss_idle_kib
    return RecordResult(results, seconds, command, rss_idle)
