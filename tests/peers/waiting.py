"""Waiting in a test for what a callback, with no event to await, will make true."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], within: float = 5.0, step: float = 0.01) -> None:
    """Return once ``condition()`` holds; fail the test if it does not within ``within`` s."""
    for _ in range(max(1, round(within / step))):
        if condition():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {within:g} s")
