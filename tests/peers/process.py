"""Child processes that never outlive the test: timeouts, escalating stops, log tails."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import re
import signal
from collections.abc import Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent() -> None:
    # If pytest itself is killed (pytest-timeout, Ctrl-C twice, OOM), no finally block
    # runs; the kernel then kills the peer so it cannot hold ports for the next run.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def spawn(argv: Sequence[str], log: Path, cwd: Path) -> asyncio.subprocess.Process:
    """Start `argv` in `cwd` with stdout and stderr appended to `log`, stdin closed."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )


async def wait_or_kill(
    proc: asyncio.subprocess.Process,
    grace: float,
    first_signal: signal.Signals | None = signal.SIGTERM,
) -> int:
    """Wait `grace` s for `proc` to exit, then send `first_signal`, then SIGKILL.

    Returns the exit code (negative for a signal, as asyncio reports it).
    """
    steps: list[tuple[signal.Signals | None, float]] = [(None, grace)]
    if first_signal is not None:
        steps.append((first_signal, 3.0))
    steps.append((signal.SIGKILL, 5.0))
    for sig, wait in steps:
        if sig is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        try:
            return await asyncio.wait_for(proc.wait(), wait)
        except TimeoutError:
            continue
    raise RuntimeError(f"process {proc.pid} survived SIGKILL")


def tail(path: Path, lines: int = 40, skip: re.Pattern[str] | None = None) -> str:
    """The last `lines` lines of a log (blank lines and `skip` matches left out)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    kept = [
        line for line in text.splitlines() if line.strip() and not (skip and skip.search(line))
    ][-lines:]
    return f"--- {path} (last {len(kept)} lines) ---\n" + "\n".join(kept)
