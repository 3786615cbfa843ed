"""The collector pacer: young collections by the clock, whatever the allocation count."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from nuage.collector import MIDDLE_THRESHOLD, YOUNG_THRESHOLD, CollectorPacer


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def collections() -> tuple[int, int]:
    young, middle, _ = gc.get_stats()
    return young["collections"], middle["collections"]


@pytest.mark.usefixtures("restored_collector")
async def test_collections_run_by_the_clock_until_stopped() -> None:
    pacer = CollectorPacer(interval=0.01)
    pacer.start()
    assert gc.get_threshold()[:2] == (YOUNG_THRESHOLD, MIDDLE_THRESHOLD)
    young, middle = collections()
    # Far fewer allocations than the young threshold: only the clock can start these.
    for _ in range(500):
        await asyncio.sleep(0.01)
        now_young, now_middle = collections()
        if now_young - young >= MIDDLE_THRESHOLD and now_middle > middle:
            break
    else:
        raise AssertionError(f"collections: {collections()}, before: {(young, middle)}")
    await pacer.stop()
    stopped = collections()
    await asyncio.sleep(0.05)
    assert collections() == stopped
