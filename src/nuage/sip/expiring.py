"""What the transaction layer keeps a fixed time after a transaction is over for its TU,
sans-I/O: the final response of a non-INVITE server transaction over UDP, to answer
retransmissions until Timer J (RFC 3261 17.2.2); the To tag of an INVITE whose 2xx was
acknowledged, to absorb that INVITE's retransmissions and answer a late CANCEL until
Timer L (RFC 6026); the ACK sent for a 2xx, to answer that 2xx's retransmissions.

Each is kept under a string key, its deadline in a queue: nothing per entry that the
garbage collector tracks or counts. At 2000 REGISTERs/s 128,000 replays are alive at any
time. Kept as objects (the parsed response, its headers, a timer entry) they were most of
the server's heap, full collections went through them, and as many died each second as
were made, so CPython's young collections, due after so many allocations *minus
deallocations*, came seldom and went through a minute of survivors: pauses of a second
(bench/RESULTS.md, section 2). A call set up and acknowledged likewise leaves a few
strings for those 32 s, not its INVITEs, its 2xx and its ACK.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

V = TypeVar("V")


class Expiring(Generic[V]):
    """Up to ``bound`` values, each kept ``lifetime`` seconds from when it was kept.

    All live equally long, so they end in the order they were kept: a queue, not a heap.
    """

    __slots__ = ("_deadlines", "_keys", "_values", "bound", "lifetime")

    def __init__(self, lifetime: float, bound: int) -> None:
        self.lifetime = lifetime
        self.bound = bound
        self._values: dict[str, V] = {}
        self._deadlines: deque[float] = deque()
        self._keys: deque[str] = deque()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def keep(self, key: str, value: V, now: float) -> bool:
        """Keep ``value`` under ``key``; False, keeping nothing, when ``bound`` are kept."""
        if len(self._values) >= self.bound or key in self._values:
            return False
        self._values[key] = value
        self._deadlines.append(now + self.lifetime)
        self._keys.append(key)
        return True

    def get(self, key: str) -> V | None:
        return self._values.get(key)

    def next_deadline(self) -> float | None:
        return self._deadlines[0] if self._deadlines else None

    def expire(self, now: float) -> None:
        deadlines, keys, values = self._deadlines, self._keys, self._values
        while deadlines and deadlines[0] <= now:
            deadlines.popleft()
            del values[keys.popleft()]
