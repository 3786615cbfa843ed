"""Hot spots from a py-spy "raw" profile (collapsed stacks: `frame;frame;... count`)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# A frame reads "function (path/to/file.py:123)"; the line number would split one
# function into as many rows as it has hot lines.
_LINE = re.compile(r":\d+\)$")
_SITE = re.compile(r"^.*?/(site-packages|lib/python3\.\d+|src)/")


@dataclass(frozen=True)
class Hotspot:
    function: str
    self_percent: float
    total_percent: float


def _label(frame: str) -> str:
    return _SITE.sub("", _LINE.sub(")", frame.strip()))


def read_profile(path: Path, top: int = 20) -> list[Hotspot]:
    """The `top` functions by own time, as % of the samples in which the server was busy
    (py-spy leaves out samples where the loop sat idle in epoll)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_label(frame) for frame in stack.split(";") if frame.strip()]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if samples == 0:
        return []
    return [
        Hotspot(function, 100 * count / samples, 100 * total[function] / samples)
        for function, count in own.most_common(top)
    ]


def top_inclusive(path: Path, top: int = 20) -> list[Hotspot]:
    """The `top` Nuage functions by inclusive time (themselves and what they call)."""
    spots = read_profile(path, top=10_000)
    mine = [spot for spot in spots if spot.function.split(" (")[-1].startswith("nuage/")]
    return sorted(mine, key=lambda spot: spot.total_percent, reverse=True)[:top]
