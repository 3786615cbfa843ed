"""Per-source throttling of failed authentication, against password guessing."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Record:
    failures: int
    window_start: float
    blocked_until: float = 0.0


class FailureThrottle:
    """Counts failures per key (a source address) in a window; too many blocks the key.

    A blocked key is refused without even checking its credentials until the block ends.
    The table is bounded so a flood of spoofed sources cannot exhaust memory.
    """

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window: float = 60.0,
        block_for: float = 60.0,
        max_keys: int = 100_000,
    ) -> None:
        self._max_failures = max_failures
        self._window = window
        self._block_for = block_for
        self._max_keys = max_keys
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def is_blocked(self, key: str, now: float) -> bool:
        record = self._records.get(key)
        return record is not None and record.blocked_until > now

    def failure(self, key: str, now: float) -> None:
        record = self._records.get(key)
        if record is None or now - record.window_start > self._window:
            record = _Record(failures=0, window_start=now)
            self._records[key] = record
        record.failures += 1
        if record.failures >= self._max_failures:
            record.blocked_until = now + self._block_for
        self._records.move_to_end(key)
        while len(self._records) > self._max_keys:
            self._records.popitem(last=False)

    def success(self, key: str) -> None:
        record = self._records.get(key)
        if record is not None and record.blocked_until == 0.0:
            del self._records[key]
