"""The garbage collector's pace in a long-running server: set by the clock as well as by
allocations.

CPython starts a young collection when allocations minus deallocations of tracked objects
since the last one pass ``threshold0``. A server in steady state frees as many old objects
each second (calls that ended, transactions past their last timer) as it keeps new ones,
so that difference hardly grows: young collections came seldom, and each went through
everything kept since the one before. At 400 calls/s the collections took up to 1.2 s
and calls failed (bench/RESULTS.md, section 1). Here a young collection also runs every
``interval``, and the middle generation every ``threshold1`` young ones, as CPython does;
full collections stay CPython's (they also wait for the old generation to have grown by
a quarter), since memory that cycles hold back keeps the difference growing.

Everything built at start-up (modules, SQLAlchemy's mappers, FastAPI's routes) is moved
out of the collector's sight first: full collections over it were a tenth of the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 10
OLD_THRESHOLD = 100
INTERVAL = 0.1


class CollectorPacer:
    """Runs young and middle collections at least every ``interval`` while started."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        # A call set-up allocates thousands of short-lived objects: with CPython's 700,
        # young collections ran several times per call.
        gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            middle_due = gc.get_count()[1] >= MIDDLE_THRESHOLD
            gc.collect(1 if middle_due else 0)
