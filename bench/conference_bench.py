"""CPU cost of the conference mixer per participant, against plain relayed calls.

    .venv/bin/python bench/conference_bench.py --parties 10 --seconds 10 --runs 3 \\
        --codec PCMU G722 opus --conferences 1 5

Per run, a server process is started on uvloop, as ``nuage serve`` runs: one
``LocalMediaEngine`` and, for the mixer, ``--conferences`` ``ConferenceMixer`` of
``--parties`` members each on the engine's 20 ms clock (each member the A side of its
own relay session, as a conference leg is); for the baseline, the same number of
parties as plain two-party relayed calls (``LocalMediaEngine`` sessions, no mixer, no
transcoding). This process plays the phones, so their cost is not the server's: each
sends a tone of its own (pre-encoded in the codec with ``nuage.media.codecs``) as 20 ms
RTP packets to its server port, 50 a second, and counts what it receives: packets,
loss by sequence gaps, and the last second of audio, decoded after the run to check it
holds the other parties' tones (and, in a conference, not its own).

The server measures its own CPU time (``time.process_time``: user + system, all
threads) over the measurement window, which starts after ``--warmup`` seconds of
traffic. Reported per point: CPU % of one core, CPU ms per second per participant,
packets sent and received per participant per second (50 expected), loss %, and the
mixer's own CPU time per tick (decode, mix, encode, send; measured around ``on_tick``).
Mixer and relay alternate, ``--runs`` times each; medians are printed, then a markdown
table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import platform
import socket
import statistics
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing.connection import Connection
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import uvloop

from nuage.media.codecs import decoder_for, encoder_for
from nuage.media.engine import LocalMediaEngine
from nuage.media.mixer import ConferenceMixer
from nuage.media.relay import RelaySide
from nuage.media.rtp import RtpSender
from nuage.media.sdp import RtpMap

HOST = "127.0.0.1"
PACKETS_PER_SECOND = 50
FRAME_SAMPLES = 160
RTP_HEADER = 12
# Audio kept per phone for the check after the run: one second; the first frames of a
# fresh decoder (G.722's and Opus's start-up) are left out of the analysis.
KEPT_FRAMES = 60
SKIPPED_FRAMES = 10
# Below this the phone is taken to hear silence.
SILENCE_DBFS = -40.0

CODECS: dict[str, RtpMap] = {
    "PCMU": RtpMap(0, "PCMU", 8000),
    "PCMA": RtpMap(8, "PCMA", 8000),
    "G722": RtpMap(9, "G722", 8000),
    "OPUS": RtpMap(111, "opus", 48000, 2),
}
MODES = ("mixer", "relay")

Pcm = npt.NDArray[np.int16]


def codec_named(name: str) -> RtpMap:
    try:
        return CODECS[name.upper()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown codec {name!r} (one of {', '.join(CODECS)})"
        ) from None


def frequencies(parties: int) -> list[int]:
    """One tone per party of a conference: whole hertz (a one-second loop of 20 ms
    frames is then seamless), spread over the telephone band."""
    step = min(250, 2900 // max(parties, 1))
    return [300 + step * index for index in range(parties)]


def amplitude(parties: int) -> float:
    """Loud enough to be heard, quiet enough that the mix of the others never clips."""
    return min(8000.0, 30000.0 / max(parties - 1, 1))


# --- server process --------------------------------------------------------------------


class _TimedMixer(ConferenceMixer):
    """The mixer, with the CPU time of its ticks (decode, mix, encode, send) added up:
    the loop thread's, so that time the process spends descheduled is not counted."""

    busy = 0.0
    ticks = 0

    def on_tick(self, tick: int) -> None:
        started = time.thread_time()
        super().on_tick(tick)
        self.busy += time.thread_time() - started
        self.ticks += 1


@dataclass(frozen=True)
class ServerPlan:
    mode: str
    codec: RtpMap
    groups: list[list[int]]
    """Phone ports: one list per conference (mixer), or [a, b, a, b, ...] (relay)."""
    port_min: int


@dataclass(frozen=True)
class ServerWindow:
    cpu_seconds: float
    wall_seconds: float
    clock_ticks: int
    mixer_busy: float
    mixer_ticks: int


async def _mixer_server(
    plan: ServerPlan, engine: LocalMediaEngine
) -> tuple[list[int], list[RelaySide], list[_TimedMixer]]:
    ports: list[int] = []
    sides: list[RelaySide] = []
    mixers: list[_TimedMixer] = []
    receives = {plan.codec.payload_type: plan.codec}
    for group in plan.groups:
        mixer = _TimedMixer(engine.clock)
        for phone_port in group:
            side = (await engine.create_session()).a
            side.set_remote(HOST, phone_port)
            mixer.add(side, receives, plan.codec)
            ports.append(side.rtp_port)
            sides.append(side)
        mixers.append(mixer)
    return ports, sides, mixers


async def _relay_server(
    plan: ServerPlan, engine: LocalMediaEngine
) -> tuple[list[int], list[RelaySide]]:
    ports: list[int] = []
    sides: list[RelaySide] = []
    (phones,) = plan.groups
    for phone_a, phone_b in zip(phones[::2], phones[1::2], strict=True):
        session = await engine.create_session()
        session.a.set_remote(HOST, phone_a)
        session.b.set_remote(HOST, phone_b)
        ports += [session.a.rtp_port, session.b.rtp_port]
        sides += [session.a, session.b]
    return ports, sides


async def _serve(plan: ServerPlan, control: Connection) -> None:
    loop = asyncio.get_running_loop()
    phones = sum(len(group) for group in plan.groups)
    # Slack in the range for ports other programs (or parallel runs) hold.
    engine = LocalMediaEngine(HOST, plan.port_min, plan.port_min + 4 * phones + 1000)
    mixers: list[_TimedMixer] = []
    if plan.mode == "mixer":
        ports, sides, mixers = await _mixer_server(plan, engine)
    else:
        ports, sides = await _relay_server(plan, engine)
    control.send(ports)
    done = loop.create_future()
    start: tuple[float, float, int, float, int] = (0.0, 0.0, 0, 0.0, 0)

    def snapshot() -> tuple[float, float, int, float, int]:
        return (
            time.process_time(),
            time.monotonic(),
            engine.clock.ticks,
            sum(mixer.busy for mixer in mixers),
            sum(mixer.ticks for mixer in mixers),
        )

    def on_command() -> None:
        nonlocal start
        command = control.recv()
        if command == "start":
            start = snapshot()
            control.send("started")
        elif command == "stop":
            end = snapshot()
            cpu, wall, ticks, busy, mixer_ticks = (e - s for e, s in zip(end, start, strict=True))
            control.send(ServerWindow(cpu, wall, int(ticks), busy, int(mixer_ticks)))
        elif command == "count":
            # Every RTP packet the phone-facing sockets received since they were bound.
            control.send(sum(side.rtp_counters().packets_in for side in sides))
        else:
            done.set_result(None)

    loop.add_reader(control.fileno(), on_command)
    await done
    loop.remove_reader(control.fileno())
    for mixer in mixers:
        mixer.close()
    await engine.close()


def _server_process(plan: ServerPlan, control: Connection) -> None:
    uvloop.run(_serve(plan, control))


# --- phones (this process) -------------------------------------------------------------


class _Phone(asyncio.DatagramProtocol):
    """One party's phone. The loop counts what it receives (while ``counting``); sending
    uses the socket directly, which keeps the phones' own cost low."""

    def __init__(self, payloads: list[bytes], codec: RtpMap, own: int, hears: list[int]) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.socket.bind((HOST, 0))
        self.port: int = self.socket.getsockname()[1]
        self.server: tuple[str, int] = (HOST, 0)
        self.own = own
        self.hears = hears
        self._payloads = payloads
        self._index = 0
        self._sender = RtpSender(codec.payload_type)
        self._samples = round(codec.clock_rate / PACKETS_PER_SECOND)
        self.counting = False
        self.sent = 0
        self.sent_total = 0  # warm-up included
        self.received = 0
        self._last = 0  # last 16-bit sequence number
        self._extended = 0  # the same, unwrapped
        self.lowest = 0
        self.highest = 0
        self.kept: deque[bytes] = deque(maxlen=KEPT_FRAMES)

    async def start(self) -> None:
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=self.socket)

    def send(self) -> None:
        packet = self._sender.packet(self._payloads[self._index], self._samples)
        self._index = (self._index + 1) % len(self._payloads)
        try:
            self.socket.sendto(packet, self.server)
        except BlockingIOError:
            return  # counted as loss: the phone could not send it
        self.sent_total += 1
        if self.counting:
            self.sent += 1

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.counting or len(data) < RTP_HEADER:
            return
        (sequence,) = struct.unpack_from("!H", data, 2)
        if self.received == 0:
            self._extended = self.lowest = self.highest = sequence
        else:
            delta = (sequence - self._last) & 0xFFFF
            self._extended += delta if delta < 0x8000 else delta - 0x10000
            self.lowest = min(self.lowest, self._extended)
            self.highest = max(self.highest, self._extended)
        self._last = sequence
        self.received += 1
        self.kept.append(data[RTP_HEADER:])

    @property
    def lost(self) -> int:
        """Sequence numbers missing between the first and last packet received."""
        if self.received == 0:
            return 0
        return max(0, self.highest - self.lowest + 1 - self.received)

    def close(self) -> None:
        self.socket.close()


def _tone_payloads(codec: RtpMap, frequency: int, level: float) -> list[bytes]:
    """One second of ``frequency`` in ``codec``, to be sent in a loop.

    Encoded as one stream of two seconds, of which the second is kept: G.722's ADPCM
    state has settled by then and comes back to the same values a second later, so the
    loop has no seam (the first second, looped, makes a G.722 decoder misread the start
    of each loop: the tone comes out up to 6 dB louder, distorted)."""
    t = np.arange(2 * PACKETS_PER_SECOND * FRAME_SAMPLES) / 8000
    pcm = (level * np.sin(2 * math.pi * frequency * t)).astype(np.int16)
    encoder = encoder_for(codec.encoding, codec.clock_rate, codec.channels or 1)
    payloads = [encoder.encode(frame) for frame in pcm.reshape(-1, FRAME_SAMPLES)]
    return payloads[PACKETS_PER_SECOND:]


def _share(
    spectrum: npt.NDArray[np.floating[Any]], freqs: npt.NDArray[np.floating[Any]], hz: int
) -> float:
    near = np.abs(freqs - hz) <= 10
    return float(spectrum[near].sum() / max(float(spectrum.sum()), 1e-9))


@dataclass(frozen=True)
class Heard:
    dbfs: float
    ok: bool
    """Audio above SILENCE_DBFS holding each tone it should (and not the phone's own)."""


def _check_audio(phone: _Phone, codec: RtpMap) -> Heard:
    decoder = decoder_for(codec.encoding, codec.clock_rate, codec.channels or 1)
    frames: list[Pcm] = [decoder.decode(payload) for payload in phone.kept]
    pcm = np.concatenate([np.zeros(0, dtype=np.int16), *frames[SKIPPED_FRAMES:]])
    if len(pcm) < FRAME_SAMPLES:
        return Heard(-math.inf, False)
    samples = pcm.astype(np.float64)
    rms = float(np.sqrt(np.mean(samples**2)))
    dbfs = 20 * math.log10(rms / 32768) if rms > 0 else -math.inf
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / 8000)
    others_ok = all(_share(spectrum, freqs, hz) > 0.3 / len(phone.hears) for hz in phone.hears)
    own_ok = _share(spectrum, freqs, phone.own) < 0.01
    return Heard(dbfs, dbfs > SILENCE_DBFS and others_ok and own_ok)


@dataclass(frozen=True)
class Run:
    mode: str
    codec: str
    conferences: int
    participants: int
    server: ServerWindow
    phone_seconds: float
    sent: int
    received: int
    lost: int
    upstream_sent: int
    upstream_received: int
    heard: list[Heard] = field(repr=False)

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.server.cpu_seconds / self.server.wall_seconds

    @property
    def cpu_ms_per_participant(self) -> float:
        """Milliseconds of CPU per second per participant."""
        return 1000.0 * self.server.cpu_seconds / self.server.wall_seconds / self.participants

    @property
    def sent_rate(self) -> float:
        return self.sent / self.phone_seconds / self.participants

    @property
    def received_rate(self) -> float:
        return self.received / self.phone_seconds / self.participants

    @property
    def loss_percent(self) -> float:
        return 100.0 * self.lost / max(self.received + self.lost, 1)

    @property
    def upstream_loss_percent(self) -> float:
        """Phones' packets the server's sockets did not get (warm-up included)."""
        lost = self.upstream_sent - self.upstream_received
        return 100.0 * lost / max(self.upstream_sent, 1)

    @property
    def ticks_per_second(self) -> float:
        return self.server.clock_ticks / self.server.wall_seconds

    @property
    def mix_us_per_tick(self) -> float:
        """The mixer's CPU time per tick, per conference (0 for the relay)."""
        return 1e6 * self.server.mixer_busy / max(self.server.mixer_ticks, 1)

    @property
    def heard_ok(self) -> int:
        return sum(heard.ok for heard in self.heard)

    @property
    def median_dbfs(self) -> float:
        return statistics.median(heard.dbfs for heard in self.heard)


def _phones_for(mode: str, codec: RtpMap, parties: int, conferences: int) -> list[_Phone]:
    tones = frequencies(parties)
    level = amplitude(parties)
    payloads = {hz: _tone_payloads(codec, hz, level) for hz in tones}
    phones: list[_Phone] = []
    if mode == "mixer":
        for _ in range(conferences):
            for hz in tones:
                phones.append(_Phone(payloads[hz], codec, hz, [f for f in tones if f != hz]))
        return phones
    # The same number of parties in two-party calls (one more if odd): peers in pairs.
    count = parties * conferences + (parties * conferences) % 2
    own = [tones[index % parties] for index in range(count)]
    for index in range(0, count, 2):
        a, b = own[index], own[index + 1]  # neighbours in ``tones``: never the same
        phones.append(_Phone(payloads[a], codec, a, [b]))
        phones.append(_Phone(payloads[b], codec, b, [a]))
    return phones


async def _drive(
    control: Connection, phones: list[_Phone], args: argparse.Namespace
) -> tuple[ServerWindow, float, int]:
    loop = asyncio.get_running_loop()
    for phone in phones:
        await phone.start()
    ports: list[int] = await loop.run_in_executor(None, control.recv)
    for phone, port in zip(phones, ports, strict=True):
        phone.server = (HOST, port)

    def send_all() -> None:
        for phone in phones:
            phone.send()

    async def play(seconds: float) -> float:
        started = deadline = loop.time()
        for _ in range(round(seconds * PACKETS_PER_SECOND)):
            send_all()
            deadline += 1 / PACKETS_PER_SECOND
            await asyncio.sleep(max(0.0, deadline - loop.time()))
        return loop.time() - started

    await play(args.warmup)
    # The exchange with the server runs in a thread, the phones keep sending meanwhile.
    playing = asyncio.ensure_future(play(args.seconds))
    for phone in phones:
        phone.counting = True
    control.send("start")
    await loop.run_in_executor(None, control.recv)
    phone_seconds = await playing
    control.send("stop")
    window: ServerWindow = await loop.run_in_executor(None, control.recv)
    for phone in phones:
        phone.counting = False
    await asyncio.sleep(0.2)  # what the phones sent last reaches the server
    control.send("count")
    upstream_received: int = await loop.run_in_executor(None, control.recv)
    return window, phone_seconds, upstream_received


def run_once(mode: str, codec: RtpMap, conferences: int, args: argparse.Namespace) -> Run:
    phones = _phones_for(mode, codec, args.parties, conferences)
    if mode == "mixer":
        groups = [
            [phone.port for phone in phones[i : i + args.parties]]
            for i in range(0, len(phones), args.parties)
        ]
    else:
        groups = [[phone.port for phone in phones]]
    context = multiprocessing.get_context("spawn")
    control, child_control = context.Pipe()
    process = context.Process(
        target=_server_process,
        args=(ServerPlan(mode, codec, groups, args.port_min), child_control),
    )
    process.start()
    # Only the child holds its end now, so its death shows here as EOFError, not a hang.
    child_control.close()
    try:
        window, phone_seconds, upstream_received = uvloop.run(_drive(control, phones, args))
        control.send("exit")
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
        for phone in phones:
            phone.close()
    return Run(
        mode=mode,
        codec=codec.encoding,
        conferences=conferences,
        participants=len(phones),
        server=window,
        phone_seconds=phone_seconds,
        sent=sum(phone.sent for phone in phones),
        received=sum(phone.received for phone in phones),
        lost=sum(phone.lost for phone in phones),
        upstream_sent=sum(phone.sent_total for phone in phones),
        upstream_received=upstream_received,
        heard=[_check_audio(phone, codec) for phone in phones],
    )


# --- report ----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _median(runs: list[Run], value: str) -> float:
    return statistics.median(float(getattr(run, value)) for run in runs)


def _describe(run: Run) -> str:
    mix = f", mix {run.mix_us_per_tick:.0f} µs/tick" if run.mode == "mixer" else ""
    return (
        f"{run.codec:5} {run.conferences}x{run.participants // run.conferences:<3} "
        f"{run.mode:5}: CPU {run.cpu_percent:5.1f} % ({run.cpu_ms_per_participant:.2f} "
        f"ms/s per participant){mix}, per participant {run.sent_rate:.1f} sent/s "
        f"{run.received_rate:.1f} received/s, loss {run.loss_percent:.3f} % "
        f"(upstream {run.upstream_loss_percent:.3f} %), clock {run.ticks_per_second:.1f} "
        f"ticks/s, audio ok {run.heard_ok}/{len(run.heard)} "
        f"(median {run.median_dbfs:.1f} dBFS)"
    )


def markdown(
    results: dict[tuple[str, int], dict[str, list[Run]]],
    args: argparse.Namespace,
    started: datetime,
    load: tuple[float, float, float],
) -> str:
    command = " ".join(["python bench/conference_bench.py", *sys.argv[1:]])
    lines = [
        "## Conference mixer CPU per participant (bench/conference_bench.py)",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M:%S} UTC",
        f"- CPUs: {os.cpu_count()} ({_cpu_model()}), kernel {platform.release()}",
        f"- Python {platform.python_version()}, uvloop {version('uvloop')}, PyAV {av.__version__}",
        f"- Load average when the run started: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "",
        f"Command: `{command}`",
        "",
        f"{args.parties} parties per conference, each phone sending a tone as 20 ms RTP "
        f"({PACKETS_PER_SECOND} packets/s) and hearing the mix of the others in the same "
        "codec; baseline: the same number of parties as two-party calls through the "
        "relay (no mixer). Server CPU (user + system) over "
        f"{args.seconds:g} s after {args.warmup:g} s of warm-up; medians of {args.runs} "
        "runs. 'mix µs/tick' is the mixer's own CPU time per 20 ms tick per conference "
        "(decode, sum, encode, send).",
        "",
        "| codec | conferences × parties | mixer CPU % of a core | mixer CPU ms/s per "
        "participant | mix µs/tick | relay CPU % | relay CPU ms/s per participant | "
        "mixer / relay per participant | packets/s per participant sent / received "
        "(mixer) | mixer clock ticks/s | loss % mixer / relay | phones hearing the others |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for (codec, conferences), by_mode in results.items():
        mixer, relay = by_mode["mixer"], by_mode["relay"]
        mixer_ms = _median(mixer, "cpu_ms_per_participant")
        relay_ms = _median(relay, "cpu_ms_per_participant")
        heard = min(run.heard_ok for run in mixer)
        lines.append(
            f"| {codec} | {conferences} × {args.parties} "
            f"| {_median(mixer, 'cpu_percent'):.1f} | {mixer_ms:.2f} "
            f"| {_median(mixer, 'mix_us_per_tick'):.0f} "
            f"| {_median(relay, 'cpu_percent'):.1f} | {relay_ms:.2f} "
            f"| {mixer_ms / relay_ms:.1f} "
            f"| {_median(mixer, 'sent_rate'):.1f} / {_median(mixer, 'received_rate'):.1f} "
            f"| {_median(mixer, 'ticks_per_second'):.1f} "
            f"| {_median(mixer, 'loss_percent'):.3f} / {_median(relay, 'loss_percent'):.3f} "
            f"| {heard}/{mixer[0].participants} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parties", type=int, default=10, help="parties per conference")
    parser.add_argument(
        "--conferences",
        type=int,
        nargs="+",
        default=[1],
        help="conferences at once (several values: one point each)",
    )
    parser.add_argument(
        "--codec",
        type=codec_named,
        nargs="+",
        default=[CODECS["PCMU"]],
        help=f"one or more of {', '.join(CODECS)} (case-insensitive)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=2.0, help="traffic before it")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--port-min",
        type=int,
        default=26000,
        help="start of the server's RTP port range (keep it below the ephemeral range)",
    )
    args = parser.parse_args()
    if args.parties < 2:
        parser.error("a conference needs at least 2 parties")

    started = datetime.now(UTC)
    load = os.getloadavg()
    results: dict[tuple[str, int], dict[str, list[Run]]] = {}
    for codec in args.codec:
        for conferences in args.conferences:
            by_mode: dict[str, list[Run]] = {mode: [] for mode in MODES}
            results[codec.encoding, conferences] = by_mode
            for number in range(1, args.runs + 1):
                for mode in MODES:
                    run = run_once(mode, codec, conferences, args)
                    by_mode[mode].append(run)
                    print(f"run {number} {_describe(run)}", flush=True)
    print()
    print(markdown(results, args, started, load))


if __name__ == "__main__":
    main()
