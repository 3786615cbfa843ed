"""`nuage` with its garbage collections timed, for benchmarks that set the server's
pauses against their own timings:

    python bench/gc_pauses.py LOG serve --config nuage.toml

runs `nuage serve --config nuage.toml` after adding a gc callback that appends a line per
collection lasting at least MIN_MS to LOG: start (time.monotonic(), CLOCK_MONOTONIC, the
same clock in every process of the machine), generation, milliseconds, objects
collected. The callback costs two clock reads per collection; the server is otherwise
the same. Standalone on purpose: the server's working directory is not the repository.
"""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_MS = 10.0


@dataclass(frozen=True, slots=True)
class Pause:
    start: float  # time.monotonic()
    generation: int
    ms: float
    collected: int

    @property
    def end(self) -> float:
        return self.start + self.ms / 1000


def read_pauses(path: Path) -> list[Pause]:
    """The pauses LOG holds (none if the server never wrote it)."""
    if not path.exists():
        return []
    pauses = []
    for line in path.read_text().splitlines():
        start, generation, ms, collected = line.split()
        pauses.append(Pause(float(start), int(generation), float(ms), int(collected)))
    return pauses


def _install(log: Path) -> None:
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.monotonic()
            return
        ms = 1000 * (time.monotonic() - started[0])
        if ms >= MIN_MS:
            with log.open("a") as out:
                out.write(f"{started[0]:.6f} {info['generation']} {ms:.3f} {info['collected']}\n")

    gc.callbacks.append(timed)


def main() -> int:
    log, argv = Path(sys.argv[1]), sys.argv[2:]
    _install(log)
    from nuage.cli import main as nuage  # noqa: PLC0415 (after the callback is in place)

    return nuage(argv)


if __name__ == "__main__":
    sys.exit(main())
