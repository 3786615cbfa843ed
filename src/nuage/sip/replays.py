"""Final responses kept to answer retransmitted requests until Timer J (RFC 3261 17.2.2),
sans-I/O.

A non-INVITE server transaction over UDP is over for its TU at its final response; only
that response must live on, 64*T1, to answer retransmissions of the request. It is kept
here as the bytes sent, under a string key, its deadline in a queue: nothing per replay
that the garbage collector tracks or counts. At 2000 REGISTERs/s 128,000 replays are alive
at any time. Kept as objects (the parsed response, its headers, a timer entry) they were
most of the server's heap, full collections went through them, and as many died each
second as were made, so CPython's young collections, due after so many allocations *minus
deallocations*, came seldom and went through a minute of survivors: pauses of a second
(bench/RESULTS.md, section 2).
"""

from __future__ import annotations

from collections import deque


class Replays:
    """Up to ``bound`` responses, each kept ``lifetime`` seconds from when it was kept.

    All live equally long, so they end in the order they were kept: a queue, not a heap.
    """

    __slots__ = ("_deadlines", "_keys", "_sent", "bound", "lifetime")

    def __init__(self, lifetime: float, bound: int) -> None:
        self.lifetime = lifetime
        self.bound = bound
        self._sent: dict[str, bytes] = {}
        self._deadlines: deque[float] = deque()
        self._keys: deque[str] = deque()

    def __len__(self) -> int:
        return len(self._sent)

    def keep(self, key: str, data: bytes, now: float) -> bool:
        """Keep ``data`` under ``key``; False, keeping nothing, when ``bound`` are kept."""
        if len(self._sent) >= self.bound or key in self._sent:
            return False
        self._sent[key] = data
        self._deadlines.append(now + self.lifetime)
        self._keys.append(key)
        return True

    def get(self, key: str) -> bytes | None:
        return self._sent.get(key)

    def next_deadline(self) -> float | None:
        return self._deadlines[0] if self._deadlines else None

    def expire(self, now: float) -> None:
        deadlines, keys, sent = self._deadlines, self._keys, self._sent
        while deadlines and deadlines[0] <= now:
            deadlines.popleft()
            del sent[keys.popleft()]
