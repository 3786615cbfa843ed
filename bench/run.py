"""Run the benchmarks against a real Nuage server and write bench/RESULTS.md.

    .venv/bin/python -m bench.run                       # everything (`make bench`)
    .venv/bin/python -m bench.run --only setup --seconds 20 --output /tmp/setup.md
    .venv/bin/python -m bench.run --only hold --only record --runs 1 --output /tmp/in_call.md
    .venv/bin/python -m bench.run --only api --only fanout --profile --output /tmp/issue4.md

Every benchmark starts its own server(s) on loopback, bounds itself in time, and stops
every process it started. See bench/README.md for what each one measures.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import uvloop

from bench.api import KINDS as API_KINDS
from bench.api import ApiResult, measure_api
from bench.fanout import TARGET_MS as FANOUT_TARGET_MS
from bench.fanout import FanoutResult, measure_fanout
from bench.in_call import (
    HoldResult,
    HoldRun,
    RecordPoint,
    RecordResult,
    measure_hold,
    measure_record,
)
from bench.media import MediaResult, MediaRun, measure_media
from bench.profile import Hotspot
from bench.ringing import BASELINE as RINGING_BASELINE
from bench.ringing import CASES as RINGING_CASES
from bench.ringing import LOADS as RINGING_LOADS
from bench.ringing import PAUSE_MS as RINGING_PAUSE_MS
from bench.ringing import TARGET_MS as RINGING_TARGET_MS
from bench.ringing import (
    RingingResult,
    Sample,
    answered,
    measure_ringing,
    slow_episodes,
    spread,
)
from bench.ringing import figures as ringing_figures
from bench.signalling import (
    MAX_RECORDS_LAG_S,
    Step,
    Stepped,
    measure_registrations,
    measure_setup_rate,
)
from bench.stats import median, percentile
from bench.webrtc import WebRtcResult, measure_webrtc

BENCH = Path(__file__).resolve().parent
SETUP_RATES = [50.0, 100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0]
REGISTER_RATES = [100.0, 200.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0]
MEDIA_POINTS = [100, 250, 500]
# Concurrent browser calls (issue 6): WebRTC legs bridged to the carrier's RTP.
WEBRTC_POINTS = [50, 100, 150]
WEBRTC_TARGET = 100
HOLD_POINTS = [100, 250, 500, 750]
RECORD_POINTS = [50, 100, 200, 300]
SETUP_TARGET = 500.0
REGISTER_TARGET = 2000.0
MEDIA_TARGET = 500
HOLD_TARGET = 500
RECORD_TARGET = 200
LOSS_TARGET = 0.5
RELAY_TIMEOUT = 300
CHOICES = [
    "setup",
    "register",
    "media",
    "relay",
    "hold",
    "record",
    "api",
    "fanout",
    "webrtc",
    "ringing",
]


def _machine() -> list[str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True, check=False)
    sipp_version = next((w for w in sipp.stdout.split() if w.startswith("v3")), "?")
    load = Path("/proc/loadavg").read_text().split()[:3]
    return [
        f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- CPUs: {os.cpu_count()} ({cpu})",
        f"- Kernel: {platform.release()}",
        f"- Python {platform.python_version()}, uvloop {version('uvloop')}, sipp {sipp_version}",
        f"- Load average when the run started: {' '.join(load)} (the machine is shared)",
    ]


def _ms(value: float) -> str:
    return "<1" if value < 1 else f"{value:.0f}"


def _step_rows(steps: list[Step], unit: str) -> list[str]:
    rows = [
        f"| {unit} | runs | attempted | failed (sum) | p50 ms | p99 ms | server CPU % "
        "| sustained |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for step in steps:
        failed = sum(run.attempted - run.successful for run in step.runs)
        attempted = sum(run.attempted for run in step.runs)
        rows.append(
            f"| {step.rate:g} | {len(step.runs)} | {attempted} | {failed} "
            f"| {_ms(step.median('p50_ms'))} | {_ms(step.median('p99_ms'))} "
            f"| {step.median('server_cpu_percent'):.0f} | {'yes' if step.clean else 'no'} |"
        )
    return rows


def _verdict(value: float, target: float) -> str:
    if value >= target:
        return "met"
    return f"not met ({target / value:.1f}x short)" if value > 0 else "not met"


def _signalling_section(
    title: str, result: Stepped, target: float, unit: str, *, how: str, command: str
) -> tuple[list[str], str]:
    best = result.best
    best_rate = best.rate if best is not None else 0.0
    baseline = result.baseline[0] if result.baseline else None
    lines = [f"## {title}", "", how, "", f"Command: `{command}`", ""]
    lines += _step_rows(result.steps, unit)
    lines.append("")
    if baseline is not None:
        lines.append(f"Baseline (sipp to sipp, no Nuage) at {baseline.rate:g}/s:")
        lines.append("")
        lines += _step_rows([baseline], unit)
        lines.append("")
    if result.held is not None:
        lines.append(
            f"Held: the highest sustained rate again on a fresh server, one run of "
            f"{result.held_seconds:g} s:"
        )
        lines.append("")
        lines += _step_rows([result.held], unit)
        lag = result.held.runs[0].records_lag_s
        if lag is not None:
            lines.append("")
            lines.append(
                f"Every call's record was closed {lag:.1f} s after the load ended "
                f"(sustained needs at most {MAX_RECORDS_LAG_S:g} s)."
                if math.isfinite(lag)
                else "The call records were still not all closed 60 s after the load ended."
            )
        lines.append("")
    p50 = f"{_ms(best.median('p50_ms'))} ms" if best else "n/a"
    p99 = f"{_ms(best.median('p99_ms'))} ms" if best else "n/a"
    verdict = _verdict(best_rate, target)
    if result.held is not None and not result.held.clean:
        verdict = f"not met (not held for {result.held_seconds:g} s)"
    lines.append(
        f"Highest sustained rate: **{best_rate:g}/s** (p50 {p50}, p99 {p99}); "
        f"target {target:g}/s: **{verdict}**."
    )
    if baseline is not None:
        ratio = best_rate / baseline.rate
        lines.append(
            f"The generator alone sustained {baseline.rate:g}/s "
            f"({'clean' if baseline.clean else 'NOT clean'}); Nuage reaches "
            f"{ratio:.2f} of that."
        )
    lines.append("")
    baseline_text = f"{baseline.rate:g}/s clean" if baseline and baseline.clean else "see below"
    summary = (
        f"| {title} | {best_rate:g}/s (p50 {p50}, p99 {p99}) | ≥ {baseline_text} "
        f"| {best_rate / baseline.rate if baseline else float('nan'):.2f} "
        f"| {target:g}/s | {verdict} |"
    )
    return lines, summary


def _profile_lines(result: Stepped) -> list[str]:
    if result.profile is None:
        return ["py-spy is not installed: no profile.", ""]
    lines = [
        f"### Profile of the server at {result.profile_rate:g} calls/s",
        "",
        f"py-spy (`record --gil --rate 200`) on the server during one run at "
        f"{result.profile_rate:g} calls/s; the server used "
        f"{result.profile_cpu_percent or 0:.0f} % of one CPU, "
        f"{result.main_thread_cpu_percent or 0:.0f} % of it in the event-loop thread (the "
        "rest: aiosqlite's database thread). Percentages are of the samples where the loop "
        "thread held the GIL; 'own' is time in the function itself, 'total' includes "
        "callees.",
        "",
        "| function | own % | total % |",
        "|---|---:|---:|",
    ]
    for spot in result.profile[:20]:
        lines.append(f"| `{spot.function}` | {spot.self_percent:.1f} | {spot.total_percent:.1f} |")
    lines.append("")
    return lines


def _media_rows(label: str, runs: list[MediaRun]) -> str:
    sent = median([run.sent for run in runs])
    loss = median([run.loss_percent for run in runs])
    cpu = median([run.server_cpu_us_per_packet for run in runs])
    lost_calls = sum(run.calls_lost for run in runs)
    return f"| {label} | {len(runs)} | {sent:.0f} | {loss:.3f} | {cpu:.1f} | {lost_calls} |"


def _media_section(result: MediaResult) -> tuple[list[str], list[str]]:
    lines = [
        "## 3. Concurrent anchored calls with RTP both ways",
        "",
        "bench/media.py plays the carrier (127.0.0.2, trunk) and user 1001's phone "
        "(registered by sipp with digest auth) over raw UDP sockets: N calls are set up "
        "at 100/s (INVITE/200/ACK, SDP anchored by Nuage), then both sides send 172-byte "
        "PCMU packets every 20 ms per call to the ports Nuage's SDP gave them "
        f"({2 * 50} packets/s per call through the relay) for {result.seconds:g} s per "
        "window, several windows back to back with the same calls up; loss counts every "
        "packet sent in a window against every packet received by its end (drain 1 s). "
        "No RTCP. Baseline: the same generator with the two sockets sending to each "
        "other directly (no relay).",
        "",
        f"Command: `{result.command}`",
        "",
        "| calls | windows | packets sent per window | loss % (median) "
        "| server CPU µs/packet | calls dropped by server |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for point in result.points:
        label = f"{point.calls} (established {point.established})"
        lines.append(_media_rows(label, point.runs))
    lines.append(
        _media_rows(f"baseline, {max(p.calls for p in result.points)} streams", result.baseline)
    )
    lines.append("")
    good = [p for p in result.points if p.established == p.calls and p.loss_percent < LOSS_TARGET]
    most = max((p.calls for p in good), default=0)
    held = result.seconds * max((len(p.runs) for p in result.points), default=0)
    lines.append(
        f"Most calls held ({held:g} s of RTP) with < {LOSS_TARGET} % loss: **{most}**; target "
        f"{MEDIA_TARGET}: **{_verdict(most, MEDIA_TARGET)}**."
    )
    lines.append("")
    memory = [
        "## 4. Memory per established call",
        "",
        "VmRSS of the server process after 50 warm-up calls (all ended) versus with N "
        "calls established and anchored (before any RTP), divided by N. Same run as 3.",
        "",
        "| calls | RSS idle MiB | RSS with calls MiB | KiB per call |",
        "|---:|---:|---:|---:|",
    ]
    for point in result.points:
        memory.append(
            f"| {point.established} | {point.rss_idle_kib / 1024:.1f} "
            f"| {point.rss_kib / 1024:.1f} | {point.memory_per_call_kib:.1f} |"
        )
    memory.append("")
    best = next((p for p in reversed(result.points) if p.runs), None)
    summary = [
        f"| Concurrent calls with RTP, < {LOSS_TARGET} % loss | {most} "
        f"(loss {best.loss_percent if best else float('nan'):.3f} % "
        f"at {best.calls if best else 0}) "
        f"| direct: {median([r.loss_percent for r in result.baseline]):.3f} % loss | - "
        f"| {MEDIA_TARGET} | {_verdict(most, MEDIA_TARGET)} |",
        f"| Memory per established call | "
        f"{best.memory_per_call_kib if best else float('nan'):.0f} KiB "
        f"(at {best.established if best else 0} calls) | - | - | - | - |",
    ]
    return lines + memory, summary


def _webrtc_section(result: WebRtcResult) -> tuple[list[str], list[str]]:
    lines = [
        "## 12. Concurrent browser calls: WebRTC legs bridged to RTP (issue 6)",
        "",
        "bench/webrtc.py: the carrier places N calls to the company number, which rings "
        "user 1001, registered over the SIP WebSocket as the web app is; this process "
        "plays the browser for every call (WebRTC answer, ICE check with USE-CANDIDATE, "
        "DTLS handshake as the client, then SRTP with rtcp-mux on one socket). Both ends "
        "send 172-byte PCMU packets every 20 ms per call, numbered (SRTP refuses a packet "
        f"index twice), {result.seconds:g} s per window. Baseline: the same count of plain "
        "calls (bench/media.py's phone over UDP: no ICE, DTLS or SRTP), same run.",
        "",
        f"Command: `{result.command}`",
        "",
        "| calls | secured (DTLS done) | setup p50 ms | windows | packets sent per window "
        "| loss % (median) | server CPU µs/packet | calls dropped by server |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in result.points:
        sent = median([run.sent for run in point.runs])
        cpu = median([run.server_cpu_us_per_packet for run in point.runs])
        lines.append(
            f"| {point.calls} (established {point.established}) | {point.secured} "
            f"| {point.setup_ms_p50:.1f} | {len(point.runs)} | {sent:.0f} "
            f"| {point.loss_percent:.3f} | {cpu:.1f} "
            f"| {sum(run.calls_lost for run in point.runs)} |"
        )
    plain_cpu = median([run.server_cpu_us_per_packet for run in result.plain])
    largest = max(p.calls for p in result.points)
    lines.append(
        f"| baseline: {largest} plain RTP calls | - | - | {len(result.plain)} "
        f"| {median([run.sent for run in result.plain]):.0f} "
        f"| {median([run.loss_percent for run in result.plain]):.3f} | {plain_cpu:.1f} "
        f"| {sum(run.calls_lost for run in result.plain)} |"
    )
    lines.append("")
    good = [
        p
        for p in result.points
        if p.secured == p.calls and p.established == p.calls and p.loss_percent < LOSS_TARGET
    ]
    most = max((p.calls for p in good), default=0)
    at_largest = next(p for p in result.points if p.calls == largest)
    ratio = median([r.server_cpu_us_per_packet for r in at_largest.runs]) / max(plain_cpu, 1e-9)
    lines.append(
        f"Most browser calls with < {LOSS_TARGET} % loss: **{most}**; target "
        f"{WEBRTC_TARGET}: **{_verdict(most, WEBRTC_TARGET)}**. Server CPU per packet, "
        f"WebRTC / plain at {largest} calls: {ratio:.2f}."
    )
    lines.append("")
    summary = [
        f"| Concurrent browser calls (WebRTC to RTP), < {LOSS_TARGET} % loss | {most} "
        f"(loss {at_largest.loss_percent:.3f} % at {largest}) "
        f"| plain RTP: {median([r.loss_percent for r in result.plain]):.3f} % loss "
        f"| CPU/packet {ratio:.2f} | {WEBRTC_TARGET} | {_verdict(most, WEBRTC_TARGET)} |"
    ]
    return lines, summary


def _problem_lines(problems: list[str]) -> list[str]:
    """The server log's warnings and errors of one step, the distinct ones, briefly."""
    if not problems:
        return []
    distinct: dict[str, int] = {}
    for line in problems:
        # Without the timestamp (the first two fields), so repeats fold together.
        text = line.split(" ", 2)[-1]
        distinct[text] = distinct.get(text, 0) + 1
    lines = [f"{len(problems)} warning/error lines in the server log, e.g.:", "", "```"]
    lines += [f"{count} x {text[:200]}" for text, count in list(distinct.items())[:5]]
    return [*lines, "```", ""]


def _others(run: MediaRun | HoldRun) -> float:
    """CPU % of one core used meanwhile by every process but the server and the generator."""
    return run.machine_busy_percent - run.cpu_percent - run.generator_cpu_percent


def _deviation(values: list[tuple[float, float, float]]) -> str:
    return " / ".join(f"{median([v[i] for v in values]):.1f}" for i in range(3))


def _hold_section(result: HoldResult) -> tuple[list[str], str]:
    windows = max((len(p.runs) for p in result.points), default=0)
    lines = [
        "## 6. Calls on hold hearing music on hold",
        "",
        "bench/in_call.py, with media.py's two ends: N calls are set up from the trunk to "
        "1001 (as in 3), then relay RTP both ways for "
        f"{windows} window(s) of {result.seconds:g} s (the baseline, same calls). Then the "
        "phone (the user) re-INVITEs every call with `a=sendonly` "
        f"(in-dialog, {200:g}/s, ACKed) and stops sending; Nuage answers it and streams "
        "its music on hold to the carrier's party, who goes on sending its own 50 "
        "packets/s per call (dropped by Nuage: the holder hears nothing). The carrier's "
        "socket follows each call's music stream by its source port: loss = 1 - received "
        "/ expected at 50 packets/s per call; 'unsent' is the part of it the server "
        "never numbered (its 20 ms clock fell behind), the rest was numbered but lost on "
        "the way; deviation = |inter-arrival time - 20 ms| between consecutive packets of "
        "one stream, measured in the generator's event loop (so it includes that loop's "
        "own delays; the relayed baseline shows that floor). CPU % is of one core over "
        "the window: the server's, the generator's (this process, both ends), and that "
        "of every other process on the machine (the machine is shared: more than a few % "
        "there means the figures of that row were measured with less than 2 free cores).",
        "",
        f"Command: `{result.command}`",
        "",
        "| calls | held (2xx / on hold) | music packets per window | expected | loss % "
        "| unsent % | deviation p50 / p99 / max ms | server CPU % | generator CPU % "
        "| others' CPU % | µs per music packet | RSS MiB | holder received | calls dropped |",
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in result.points:
        runs = point.runs
        if not runs:
            lines.append(f"| {point.calls} | {point.held} / {point.on_hold} | no window |")
            continue
        packets = median([r.music.packets for r in runs])
        cpu = median([r.server_cpu_seconds for r in runs])
        lines.append(
            f"| {point.calls} (established {point.established}) "
            f"| {point.held} / {point.on_hold} | {packets:.0f} "
            f"| {median([r.music.expected for r in runs]):.0f} | {point.loss_percent:.3f} "
            f"| {median([r.music.unsent_percent for r in runs]):.3f} "
            f"| {_deviation([r.music.deviation_ms for r in runs])} "
            f"| {median([r.cpu_percent for r in runs]):.0f} "
            f"| {median([r.generator_cpu_percent for r in runs]):.0f} "
            f"| {median([_others(r) for r in runs]):.0f} "
            f"| {1e6 * cpu / max(packets, 1):.1f} | {point.rss_kib / 1024:.1f} "
            f"| {sum(r.holder_received for r in runs)} | {sum(r.calls_lost for r in runs)} |"
        )
    lines += [
        "",
        "Baseline, the same calls before the hold (RTP relayed both ways, media.py's "
        "window; deviation over both directions, the generator's own timing included):",
        "",
        "| calls | packets sent per window | loss % | deviation p50 / p99 / max ms "
        "| server CPU % | generator CPU % | others' CPU % | µs per packet |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for point in result.points:
        relayed = point.relayed
        lines.append(
            f"| {point.established} | {median([r.sent for r in relayed]):.0f} "
            f"| {median([r.loss_percent for r in relayed]):.3f} "
            f"| {_deviation([r.deviation_ms for r in relayed])} "
            f"| {median([r.cpu_percent for r in relayed]):.0f} "
            f"| {median([r.generator_cpu_percent for r in relayed]):.0f} "
            f"| {median([_others(r) for r in relayed]):.0f} "
            f"| {median([r.server_cpu_us_per_packet for r in relayed]):.1f} |"
        )
    lines.append("")
    for point in result.points:
        if point.problems:
            lines += [f"At {point.calls} calls:", "", *_problem_lines(point.problems)]
    good = [p for p in result.points if p.clean and p.loss_percent < LOSS_TARGET]
    most = max((p.calls for p in good), default=0)
    best = next((p for p in reversed(result.points) if p.calls == most), None)
    lines.append(
        f"Most calls on hold with < {LOSS_TARGET} % music loss: **{most}**; target "
        f"{HOLD_TARGET}: **{_verdict(most, HOLD_TARGET)}**."
    )
    ratio = "-"
    if best is not None and best.runs and best.relayed:
        hold_cpu = median([r.cpu_percent for r in best.runs])
        relay_cpu = median([r.cpu_percent for r in best.relayed])
        ratio = f"{hold_cpu / relay_cpu:.2f}" if relay_cpu > 0 else "-"
        lines.append(
            f"At {most} calls the server used {hold_cpu:.0f} % of a core to stream music "
            f"to every call (and drop the held party's RTP), against {relay_cpu:.0f} % to "
            "relay the same calls both ways (ratio in the summary)."
        )
    lines.append("")
    figure, relayed_loss = "", float("nan")
    if best is not None and best.runs:
        p99 = median([r.music.deviation_ms[1] for r in best.runs])
        figure = f" (loss {best.loss_percent:.3f} %, deviation p99 {p99:.1f} ms)"
        relayed_loss = median([r.loss_percent for r in best.relayed])
    summary = (
        f"| Calls on hold hearing music, < {LOSS_TARGET} % loss | {most}{figure} "
        f"| same calls relayed: {relayed_loss:.3f} % loss | CPU {ratio} | {HOLD_TARGET} "
        f"| {_verdict(most, HOLD_TARGET)} |"
    )
    return lines, summary


def _record_section(result: RecordResult) -> tuple[list[str], str]:
    windows = max((len(p.runs) for p in result.points), default=0)
    lines = [
        "## 7. Concurrent recorded calls",
        "",
        "bench/in_call.py: N calls from the trunk to 1001 (as in 3); in each, the phone "
        "(the user, owner of the recording) keys `*1` as two SIP INFO "
        f"application/dtmf-relay ({200:g} calls/s); once /healthz counts N active "
        f"recordings, RTP flows both ways for {windows} window(s) of {result.seconds:g} s "
        "(media.py's window, with real RTP numbering: loss of the relayed RTP; CPU % of "
        "one core, as in 6), then the phone hangs up every call (BYE) and the new WAV files under "
        "data/recordings/<company>/ are read back with `wave`: count, format (stereo, "
        "8 kHz, 16-bit), length against each call's span (from the `1` answered to the "
        "BYE sent; files and spans paired in sorted order, as files are not named after "
        "their call), and the seconds of each channel holding recorded RTP (non-zero "
        "samples: the generator's u-law 0x00 payload decodes far from 0; expected: the "
        f"{windows * result.seconds:g} s sent, plus up to 0.2 s for the latching packet "
        "and the concealment that fades each stream's end).",
        "",
        f"Command: `{result.command}`",
        "",
        "| calls | recording (keyed / active) | packets sent per window | relayed loss % "
        "| server CPU % | generator CPU % | others' CPU % | µs per packet | RSS MiB "
        "| files (stereo 8 kHz 16-bit) | file s / span s (median) "
        "| files shorter than spans: total % / worst % "
        "| RTP s per channel A / B (median; min) | active after hang-up | calls dropped |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|",
    ]
    for point in result.points:
        runs = point.runs
        files = point.files
        stereo = sum(1 for f in files if f.stereo)
        left = [f.audio_seconds[0] for f in files]
        right = [f.audio_seconds[1] for f in files]
        audio = (
            f"{median(left):.2f} / {median(right):.2f}; {min(left):.2f} / {min(right):.2f}"
            if files
            else "-"
        )
        total, worst = point.shortfall_percent
        lines.append(
            f"| {point.calls} (established {point.established}) "
            f"| {point.started} / {point.recording} "
            f"| {median([r.sent for r in runs]):.0f} | {point.loss_percent:.3f} "
            f"| {median([r.cpu_percent for r in runs]):.0f} "
            f"| {median([r.generator_cpu_percent for r in runs]):.0f} "
            f"| {median([_others(r) for r in runs]):.0f} "
            f"| {median([r.server_cpu_us_per_packet for r in runs]):.1f} "
            f"| {point.rss_kib / 1024:.1f} | {len(files)} ({stereo}) "
            f"| {median([f.seconds for f in files]):.2f} / {median(point.spans):.2f} "
            f"| {total:.2f} / {worst:.2f} | {audio} | {point.left_active} "
            f"| {sum(r.calls_lost for r in runs)} |"
        )
    lines.append("")
    for point in result.points:
        if point.problems:
            lines += [f"At {point.calls} calls:", "", *_problem_lines(point.problems)]

    def complete(point: RecordPoint) -> bool:
        return (
            point.clean
            and point.loss_percent < LOSS_TARGET
            and point.shortfall_percent[1] < LOSS_TARGET
        )

    most = max((p.calls for p in result.points if complete(p)), default=0)
    relayed = max(
        (p.calls for p in result.points if p.clean and p.loss_percent < LOSS_TARGET), default=0
    )
    best = next((p for p in result.points if p.calls == most), None)
    lines += [
        f"Most calls recorded with < {LOSS_TARGET} % loss of the relayed RTP, every file "
        f"written (stereo) and none more than {LOSS_TARGET} % shorter than its call: "
        f"**{most}**; target {RECORD_TARGET}: **{_verdict(most, RECORD_TARGET)}**. "
        f"Without the length condition (relayed RTP and files only): {relayed}.",
        "",
    ]
    figure = ""
    if best is not None:
        cpu = median([r.cpu_percent for r in best.runs])
        figure = (
            f" (loss {best.loss_percent:.3f} %, files ≤ {best.shortfall_percent[1]:.2f} % "
            f"short, CPU {cpu:.0f} %)"
        )
    summary = (
        f"| Concurrent recorded calls, < {LOSS_TARGET} % loss, files complete | {most}{figure} "
        f"| - | - | {RECORD_TARGET} | {_verdict(most, RECORD_TARGET)} |"
    )
    return lines, summary


def _hotspot_lines(spots: list[Hotspot] | None, what: str) -> list[str]:
    if not spots:
        return []
    lines = [what, "", "| function | own % | total % |", "|---|---:|---:|"]
    lines += [f"| `{s.function}` | {s.self_percent:.1f} | {s.total_percent:.1f} |" for s in spots]
    return [*lines, ""]


def _api_section(result: ApiResult) -> tuple[list[str], list[str]]:
    lines = [
        f"## 9. REST API latency at {result.rate:g} requests/s",
        "",
        "bench/api.py against a `nuage serve` of a generated 300-user company "
        "(bench/company.py: Belgian names with accents; each user logged in, one session "
        "each, and 8 favorites): requests go out open-loop from this process "
        "(bench/http_load.py, keep-alive connections) at a steady "
        f"{result.rate:g}/s, and each latency runs from the request's *scheduled* time "
        "to the end of its response, so that a queue in the server shows. Per run, "
        f"{result.seconds:g} s of each: `GET /healthz` (the baseline: uvicorn, FastAPI, "
        "a JSON answer, no token, no database), `GET /api/v1/directory?q=...&limit=50` "
        "(60 typed queries: name starts, fragments, extensions, e-mails, misses), "
        "`GET /api/v1/favorites` (8 contacts), `PUT` and `DELETE /api/v1/favorites/{id}` "
        "alternately (half each of the phase's rate); requests rotate over the 300 "
        f"sessions. {result.runs} runs, the phases in turn in each; medians of the "
        "runs' percentiles (max: over all runs). CPU % is of one core over the phase "
        "(for PUT and DELETE: their phase together); µs/request = server CPU per "
        "request; 'late p99' is the generator's own delay in sending.",
        "",
        f"Command: `{result.command}`",
        "",
    ]
    summary: list[str] = []
    for backend in result.backends:
        lines += [
            f"{backend.name}:",
            "",
            "| request | requests | errors | p50 ms | p99 ms | max ms | p50 / healthz "
            "| p99 / healthz | server CPU % | server µs/request | CPU / healthz "
            "| generator CPU % | others' CPU % | late p99 ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        base_p50 = backend.median("healthz", "p50_ms")
        base_p99 = backend.median("healthz", "p99_ms")
        base_cpu = backend.median("healthz", "server_cpu_percent")
        for kind in API_KINDS:
            runs = backend.runs[kind]
            if not runs:
                continue
            p50, p99 = backend.median(kind, "p50_ms"), backend.median(kind, "p99_ms")
            cpu = backend.median(kind, "server_cpu_percent")
            lines.append(
                f"| {kind} | {sum(r.samples for r in runs)} | {sum(r.errors for r in runs)} "
                f"| {p50:.1f} | {p99:.1f} | {max(r.max_ms for r in runs):.1f} "
                f"| {p50 / base_p50:.2f} | {p99 / base_p99:.2f} | {cpu:.0f} "
                f"| {backend.median(kind, 'server_us_per_request'):.0f} | {cpu / base_cpu:.2f} "
                f"| {backend.median(kind, 'generator_cpu_percent'):.0f} "
                f"| {backend.median(kind, 'others_cpu_percent'):.0f} "
                f"| {backend.median(kind, 'lateness_p99_ms'):.1f} |"
            )
        lines.append("")
        failures: dict[int, int] = {}
        for runs in backend.runs.values():
            for run in runs:
                for status, count in run.failures.items():
                    failures[status] = failures.get(status, 0) + count
        if failures:
            shown = ", ".join(
                f"{count} x {status or 'no answer'}" for status, count in sorted(failures.items())
            )
            lines += [f"Errors by status: {shown}.", ""]
        lines += _hotspot_lines(
            backend.profile,
            f"py-spy on the {backend.name} server during one more {backend.profile_phase} "
            "phase (% of the samples where its loop thread ran Python):",
        )
        figures = "; ".join(
            f"{kind} {backend.median(kind, 'p50_ms'):.1f} / {backend.median(kind, 'p99_ms'):.1f}"
            for kind in API_KINDS[1:]
        )
        summary.append(
            f"| 9. API at {result.rate:g} req/s, {backend.name}: p50 / p99 ms | {figures} "
            f"| healthz {base_p50:.1f} / {base_p99:.1f} "
            f"| search p99 / healthz p99 {backend.median('search', 'p99_ms') / base_p99:.2f} "
            "| none given (p50/p99 at 200/s) | measured |"
        )
    return lines, summary


def _fanout_section(result: FanoutResult) -> tuple[list[str], list[str]]:
    lines = [
        f"## 10. Presence fan-out to {result.clients} WebSocket clients",
        "",
        "bench/fanout.py: a company of 1,000 users (bench/company.py), each with its own "
        "session and its own WebSocket on /api/v1/events, all in one client process "
        "(bench/ws_clients.py: a hand-written asyncio client, uvloop, a few µs per "
        "message; offering permessage-deflate as browsers do unless said). This process "
        f"makes {result.changes} status changes per run, {result.spacing:g} s apart "
        "(open loop), each by another user (PUT /api/v1/me/status); a delivery's latency "
        "is the arrival of its `presence.status` in the client process minus the time "
        "the PUT was written (CLOCK_MONOTONIC in both). Server(s), clients and this "
        "process share the machine's 2 cores: the CPU columns (% of one core over the "
        "runs) show who had them; 'others' is every other process on the (shared) "
        "machine. Baseline: the same clients on a bare uvloop broadcaster "
        "(bench/ws_baseline.py: no framework, no database, no compression, one frame "
        "written to every socket). p50 / p99: medians of the runs; max: over all "
        "deliveries; first / last: per change, the median over changes of its first and "
        "last delivery; PUT: its own response time.",
        "",
        f"Command: `{result.command}`",
        "",
        "| variant | clients | runs | delivered / expected | p50 ms | p99 ms | p99 per run ms "
        "| max ms | PUT answered ms | first / last delivery ms | server CPU % | clients CPU % "
        "| others' CPU % | closed by the server |",
        "|---|---:|---:|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for v in result.variants:
        delivered, expected = v.delivered
        lines.append(
            f"| {v.name} | {v.connected} ({v.failed} failed) | {len(v.runs)} "
            f"| {delivered} / {expected} | {v.median('p50'):.1f} | {v.median('p99'):.1f} "
            f"| {', '.join(f'{r.p(0.99):.0f}' for r in v.runs)} "
            f"| {v.max_ms:.1f} | {v.median('put'):.1f} "
            f"| {v.median('first'):.1f} / {v.median('last'):.1f} "
            f"| {v.median('server_cpu'):.0f} | {v.median('client_cpu'):.0f} "
            f"| {v.median('others_cpu'):.0f} | {len(v.closed)} |"
        )
    lines.append("")
    for v in result.variants:
        if v.nodes > 1 and v.runs:
            parts = []
            for node in sorted(v.runs[0].by_node):
                values = [x for r in v.runs for x in r.by_node.get(node, [])]
                parts.append(
                    f"clients of node {node + 1}: p50 {percentile(values, 0.5):.1f} ms, "
                    f"p99 {percentile(values, 0.99):.1f} ms"
                )
            lines += [f"{v.name}: " + "; ".join(parts) + " (all runs pooled).", ""]
        lines += _hotspot_lines(
            v.profile,
            f"py-spy on the server ({v.name}) during one more run of {result.changes} "
            f"changes (it used {v.profile_cpu_percent:.0f} % of a core; % of the samples "
            "where its loop thread ran Python):",
        )
    summary = []
    baseline = result.variants[0]
    for v in result.variants[1:]:
        p99 = v.median("p99")
        verdict = "met" if p99 < FANOUT_TARGET_MS else f"not met ({p99 / FANOUT_TARGET_MS:.1f}x)"
        summary.append(
            f"| 10. Presence fan-out to {v.connected} clients, {v.name}: p50 / p99 / max "
            f"| {v.median('p50'):.0f} / {p99:.0f} / {v.max_ms:.0f} ms "
            f"| bare broadcaster: {baseline.median('p50'):.0f} / {baseline.median('p99'):.0f} ms "
            f"| p99 {p99 / baseline.median('p99'):.1f} | p99 < {FANOUT_TARGET_MS:g} ms "
            f"| {verdict} |"
        )
    return lines, summary


def _ringing_section(result: RingingResult) -> tuple[list[str], list[str]]:
    lines = [
        "## 13. Time from placing a call to ringing (issue 6)",
        "",
        "bench/ringing.py (user agents: bench/sip_ua.py): each call is timed from the "
        "caller's first INVITE to the callee's device receiving the server's INVITE (it "
        "rings: the issue's figure) and to the caller receiving 180 Ringing. Browser: the "
        "web app's SIP over WebSocket (/sip), the app's access token as Bearer credential "
        "on every request, a Chrome-like WebRTC offer (ICE credentials and host candidate, "
        "DTLS fingerprint, setup:actpass, rtcp-mux, BUNDLE, Opus/RED/G.722/G.711); the "
        "browser callee checks it gets a WebRTC offer made for it. Desk phone: SIP over UDP "
        "with a plain RTP offer; as a caller it answers the digest challenge of every "
        "INVITE (401, ACK, INVITE with credentials: included in its time). Callees send "
        "180 at once, then 200; the caller ACKs and hangs up at once. The three kinds of "
        "call are interleaved call by call. Idle: one call at a time, 20 ms apart. Loaded: "
        f"{result.rate:g} calls/s (all kinds together, open loop) while {result.background} "
        "calls from the carrier to a browser (user 1001) are up with SRTP both ways "
        "(bench/webrtc.py's ends). Every user agent and the background media run in this "
        f"process. {result.runs} run(s), each on a fresh server: {result.calls} calls of "
        "each kind idle, then as many loaded. Percentiles per run; the table gives their "
        "median over the runs, 'p99 per run' the spread. Ratios against the baseline (desk "
        "phone to desk phone, same runs, same load). The server runs under "
        "bench/gc_pauses.py, which logs its garbage collections (time, generation, "
        "length).",
        "",
        f"Command: `{result.command}`",
        "",
        "| load | call | answered / placed | offer of the callee's kind "
        "| callee rings: p50 / p95 / p99 / max ms | p99 per run ms "
        "| caller has 180: p50 / p95 / p99 / max ms | rings p50 / baseline "
        "| rings p99 / baseline | retransmissions |",
        "|---|---|---:|---:|---|---|---|---:|---:|---:|",
    ]
    summary: list[str] = []

    def shown(values: tuple[float, ...]) -> str:
        return " / ".join(f"{v:.1f}" for v in values)

    def rings(sample: Sample) -> float:
        return sample.rings_ms

    for load in RINGING_LOADS:
        base = result.medians(load, RINGING_BASELINE, rings)
        for index, case in enumerate(RINGING_CASES):
            samples = result.samples(load, index)
            figures = result.medians(load, index, rings)
            per_run = [ringing_figures(p.of(index), rings)[2] for p in result.phases_of(load)]
            lines.append(
                f"| {load} | {case.name} | {len(answered(samples))} / {len(samples)} "
                f"| {sum(s.offer_ok for s in samples)} | {shown(figures)} "
                f"| {', '.join(f'{v:.0f}' for v in per_run)} "
                f"| {shown(result.medians(load, index, lambda s: s.ringback_ms))} "
                f"| {figures[0] / base[0]:.2f} | {figures[2] / base[2]:.2f} "
                f"| {sum(s.retransmissions for s in samples)} |"
            )
            if index == RINGING_BASELINE:
                continue
            p99 = figures[2]
            met = p99 < RINGING_TARGET_MS and len(answered(samples)) == len(samples)
            verdict = "met" if met else f"not met (p99 {p99 / RINGING_TARGET_MS:.1f}x)"
            summary.append(
                f"| 13. Placing a call to ringing at the callee, {case.name}, {load}: "
                f"p50 / p95 / p99 | {shown(figures[:3])} ms "
                f"| desk phone → desk phone: {base[0]:.1f} / {base[2]:.1f} ms "
                f"| p99 {p99 / base[2]:.2f} | p99 < {RINGING_TARGET_MS:g} ms | {verdict} |"
            )
    lines.append("")
    for load in RINGING_LOADS:
        phases = result.phases_of(load)
        everything = [s for p in phases for s in p.samples]
        episodes = slow_episodes(everything)
        if not episodes:
            lines.append(f"{load.capitalize()}: every call rang within {RINGING_TARGET_MS:g} ms.")
            continue
        slow = [s for e in episodes for s in e]
        paused = sum(1 for p in phases for s in p.samples if s in slow and p.paused(s))
        longest = max(episodes, key=lambda e: e[-1].started - e[0].started)
        lines.append(
            f"{load.capitalize()}: {len(slow)} of {len(everything)} calls rang "
            f"{RINGING_TARGET_MS:g} ms or more after their INVITE (or never), in "
            f"{len(episodes)} episode(s) of calls started within 1 s of each other (the "
            f"longest: {len(longest)} calls of {len({s.case for s in longest})} kind(s) over "
            f"{longest[-1].started - longest[0].started:.1f} s; the slowest call "
            f"{max(s.rings_ms for s in slow):.0f} ms); {paused} of them were waiting while "
            f"the server ran a garbage collection of {RINGING_PAUSE_MS:g} ms or more."
        )
    challenge = spread(
        s.challenge_ms
        for load in RINGING_LOADS
        for s in answered(result.samples(load, RINGING_BASELINE))
    )
    lines += [
        "",
        "Of the baseline's time, the digest challenge (first INVITE to the INVITE with "
        f"credentials) took p50 {challenge[0]:.1f} ms, p99 {challenge[2]:.1f} ms (all calls "
        "pooled).",
        "",
        "Per phase: CPU % of one core over the phase (server, this process, every other "
        "process on the machine); the server's garbage collections of "
        f"{RINGING_PAUSE_MS:g} ms or more (bench/gc_pauses.py: count, the longest with its "
        "generation, objects it collected); the background calls' RTP.",
        "",
        "| load | run | seconds | calls | server CPU % "
        "| server CPU ms per call (loaded: the background's media included) "
        f"| generator CPU % | others' CPU % | collections ≥ {RINGING_PAUSE_MS:g} ms "
        "| longest collection | background calls secured | background RTP loss % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for phase in result.phases:
        background = phase.background
        long = [p for p in phase.pauses if p.ms >= RINGING_PAUSE_MS]
        worst = max(phase.pauses, key=lambda p: p.ms, default=None)
        longest_text = (
            f"{worst.ms:.0f} ms (gen {worst.generation}, {worst.collected} objects)"
            if worst is not None
            else "-"
        )
        lines.append(
            f"| {phase.load} | {phase.run + 1} | {phase.seconds:.1f} | {len(phase.samples)} "
            f"| {phase.percent(phase.server_cpu_seconds):.0f} "
            f"| {1000 * phase.server_cpu_seconds / max(len(phase.samples), 1):.1f} "
            f"| {phase.percent(phase.generator_cpu_seconds):.0f} "
            f"| {phase.others_cpu_percent:.0f} | {len(long)} | {longest_text} "
            f"| {phase.secured if background else '-'} "
            f"| {f'{background.loss_percent:.3f}' if background else '-'} |"
        )
    lines.append("")
    if result.problems:
        lines += _problem_lines(result.problems)
    lines += _hotspot_lines(
        result.profile,
        "py-spy on the server during one more run's loaded phase (it used "
        f"{result.profile_cpu_percent:.0f} % of a core; % of the samples where its loop "
        "thread ran Python):",
    )
    return lines, summary


def _relay(seconds: float, runs: int) -> tuple[list[str], str]:
    argv = [sys.executable, str(BENCH / "relay_bench.py")]
    argv += ["--seconds", f"{min(seconds, 10):g}", "--rounds", str(runs)]
    command = shlex.join(["python", "bench/relay_bench.py", *argv[2:]])
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=RELAY_TIMEOUT, check=False
        )
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        output = f"(timed out after {RELAY_TIMEOUT} s)"
    lines = [
        "## 5. Relay micro-benchmark (bench/relay_bench.py)",
        "",
        "Nuage's relay engine alone against a bare uvloop datagram relay, 100 sessions "
        "(that script's own method, see its docstring).",
        "",
        f"Command: `{command}`",
        "",
        "```",
        output.strip(),
        "```",
        "",
    ]
    ratio = next((line for line in output.splitlines() if line.startswith("nuage / bare")), "")
    summary = (
        f"| Relay CPU per packet vs bare uvloop | {ratio or 'see section 5'} | - | - | - | - |"
    )
    return lines, summary


async def _main(args: argparse.Namespace) -> None:
    machine = _machine()
    workdir = Path(tempfile.mkdtemp(prefix="nuage-bench-"))
    only = set(args.only or CHOICES)
    command = "python -m bench.run" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in (("seconds", args.seconds), ("runs", args.runs))
    )
    sections: list[str] = []
    summary: list[str] = []
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", flush=True)

    if "setup" in only:
        log("call setup rate")
        setup = await measure_setup_rate(
            workdir / "setup", SETUP_RATES, args.runs, args.seconds, SETUP_TARGET
        )
        lines, row = _signalling_section(
            "1. Call setup rate",
            setup,
            SETUP_TARGET,
            "calls/s",
            how="sipp uac (bench/scenarios/uac_call.xml) at 127.0.0.2, the trunk, calls the "
            "company number; Nuage (B2BUA, media anchored: SDP rewritten and RTP ports "
            "opened, no RTP sent) routes it to user 1001, a sipp uas "
            "(uas_answer.xml: 180 then 200) registered with digest auth; the caller hangs "
            "up at once (0 hold). Setup time: first INVITE to 200 (sipp -trace_rtt). Each "
            f"rate: {args.runs} runs of {args.seconds:g} s on a fresh server; stepping stops "
            "at the first rate that is not sustained. Sustained = every call answered, "
            "none failed, and p99 setup time under 1 s in every run (above capacity sipp's "
            "retransmissions hide a growing backlog: every call still completes, seconds "
            "late).",
            command=f"{command} --only setup",
        )
        sections += [*lines, *_profile_lines(setup)]
        summary.append(row)
    if "register" in only:
        log("registrations")
        registrations = await measure_registrations(
            workdir / "register", REGISTER_RATES, args.runs, args.seconds, REGISTER_TARGET
        )
        lines, row = _signalling_section(
            "2. Registrations per second (digest auth)",
            registrations,
            REGISTER_TARGET,
            "registrations/s",
            how="sipp (bench/scenarios/register.xml) registers the 200 users of a bench "
            "company in turn from one address: REGISTER, 401, REGISTER with the MD5 digest, "
            "200 (binding written to SQLite). Time: first REGISTER to 200. Same stepping "
            "and 'sustained' rule as 1. Baseline: sipp against a sipp registrar "
            "(registrar.xml, challenges but does not check the digest).",
            command=f"{command} --only register",
        )
        sections += lines
        summary.append(row)
    if "media" in only:
        log("concurrent calls with RTP, memory per call")
        media = await measure_media(
            workdir / "media",
            MEDIA_POINTS,
            args.runs,
            args.seconds,
            f"{command} --only media",
        )
        lines, rows = _media_section(media)
        sections += lines
        summary += rows
    if "webrtc" in only:
        log("concurrent browser calls (WebRTC legs)")
        webrtc = await measure_webrtc(
            workdir / "webrtc", WEBRTC_POINTS, args.runs, args.seconds, f"{command} --only webrtc"
        )
        lines, rows = _webrtc_section(webrtc)
        sections += lines
        summary += rows
    if "ringing" in only:
        log("time from placing a call to ringing")
        ringing = await measure_ringing(
            workdir / "ringing", args.runs, f"{command} --only ringing", profile=args.profile
        )
        lines, rows = _ringing_section(ringing)
        sections += lines
        summary += rows
    if "relay" in only:
        log("relay micro-benchmark")
        lines, row = await asyncio.to_thread(_relay, args.seconds, args.runs)
        sections += lines
        summary.append(row)
    if "hold" in only:
        log("calls on hold hearing music")
        hold = await measure_hold(
            workdir / "hold", HOLD_POINTS, args.runs, args.seconds, f"{command} --only hold"
        )
        lines, row = _hold_section(hold)
        sections += lines
        summary.append(row)
    if "record" in only:
        log("concurrent recorded calls")
        record = await measure_record(
            workdir / "record", RECORD_POINTS, args.runs, args.seconds, f"{command} --only record"
        )
        lines, row = _record_section(record)
        sections += lines
        summary.append(row)
    if "api" in only:
        log("REST API latency at 200 requests/s")
        api = await measure_api(
            workdir / "api",
            args.runs,
            min(args.seconds, 10.0),
            f"{command} --only api",
            profile=args.profile,
        )
        lines, rows = _api_section(api)
        sections += lines
        summary += rows
    if "fanout" in only:
        log("presence fan-out to 1000 WebSocket clients")
        fanout = await measure_fanout(
            workdir / "fanout",
            args.runs,
            f"{command} --only fanout",
            profile=args.profile,
            log=log,
        )
        lines, rows = _fanout_section(fanout)
        sections += lines
        summary += rows
    log("done")
    header = [
        "# Nuage benchmark results",
        "",
        f"Written by `make bench` (`{command}`); medians over the runs of each point. "
        "How each figure is measured: the sections below and bench/README.md.",
        "",
        "## Machine",
        "",
        *machine,
        "",
        "## Summary",
        "",
        "| figure | Nuage (median) | baseline | ratio | target | verdict |",
        "|---|---|---|---:|---|---|",
        *summary,
        "",
    ]
    args.output.write_text("\n".join(header + sections))
    print(f"wrote {args.output}; work files in {workdir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=CHOICES,
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    parser.add_argument("--runs", type=int, default=3, help="runs per point (medians)")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="api, fanout, ringing: one more phase under py-spy (if installed), its hot spots",
    )
    args = parser.parse_args()
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
