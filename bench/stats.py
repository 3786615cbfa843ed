"""Small helpers shared by the benchmarks: percentiles, medians, sipp's per-call times."""

from __future__ import annotations

import csv
import os
import statistics
from collections.abc import Sequence
from pathlib import Path


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rtt_values(workdir: Path) -> list[float]:
    """Response times (ms) that sipp -trace_rtt wrote into `workdir` (every *_rtt.csv).

    Each row is Date_ms;response_time_ms;rtd_no.
    """
    values: list[float] = []
    for path in workdir.glob("*_rtt.csv"):
        with path.open(newline="") as f:
            for row in csv.reader(f, delimiter=";"):
                try:
                    values.append(float(row[1]))
                except (IndexError, ValueError):
                    continue
    return values


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used so far, the children they reaped
    included (/proc/<pid>/stat: utime, stime, cutime, cstime). Per-process times are
    exact, unlike /proc/stat's tick samples, which miss the short periodic bursts of
    RTP work almost entirely."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: its parent's cutime counts it once reaped
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")
