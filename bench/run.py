"""Run the benchmarks against a real Nuage server and write bench/RESULTS.md.

    .venv/bin/python -m bench.run                       # everything (`make bench`)
    .venv/bin/python -m bench.run --only setup --seconds 20 --output /tmp/setup.md

Every benchmark starts its own server(s) on loopback, bounds itself in time, and stops
every process it started. See bench/README.md for what each one measures.
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench.media import MediaResult, MediaRun, measure_media
from bench.signalling import Step, Stepped, measure_registrations, measure_setup_rate
from bench.stats import median

BENCH = Path(__file__).resolve().parent
SETUP_RATES = [50.0, 70.0, 90.0, 110.0, 150.0, 200.0, 300.0, 400.0, 500.0]
REGISTER_RATES = [100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, 1500.0, 2000.0]
MEDIA_POINTS = [100, 250, 500]
SETUP_TARGET = 500.0
REGISTER_TARGET = 2000.0
MEDIA_TARGET = 500
LOSS_TARGET = 0.5
RELAY_TIMEOUT = 300


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
    p50 = f"{_ms(best.median('p50_ms'))} ms" if best else "n/a"
    p99 = f"{_ms(best.median('p99_ms'))} ms" if best else "n/a"
    lines.append(
        f"Highest sustained rate: **{best_rate:g}/s** (p50 {p50}, p99 {p99}); "
        f"target {target:g}/s: **{_verdict(best_rate, target)}**."
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
        f"| {target:g}/s | {_verdict(best_rate, target)} |"
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
    only = set(args.only or ["setup", "register", "media", "relay"])
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
    if "relay" in only:
        log("relay micro-benchmark")
        lines, row = await asyncio.to_thread(_relay, args.seconds, args.runs)
        sections += lines
        summary.append(row)
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
        choices=["setup", "register", "media", "relay"],
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    parser.add_argument("--runs", type=int, default=3, help="runs per point (medians)")
    parser.add_argument("--output", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
