"""Sliding windows over recent calls: the evidence a breaker trips on.

Both windows keep running totals, so reading a rate never walks the buckets, and both
use fixed-size storage: memory does not grow with traffic or with the length of an outage.

Calls are added without a lock. A time window therefore never subtracts an expired
bucket from its totals: it recomputes them from the buckets at each rotation, so a race
between threads can at worst miscount a call until the next rotation, never leave the
totals drifting or negative.
"""

from __future__ import annotations

from typing import Protocol


class SlidingWindow(Protocol):
    calls: int
    failures: int
    slow: int

    def add(self, now: float, failed: bool, slow: bool) -> None: ...

    def add_successes(self, count: int) -> None:
        """Fold in ``count`` plain successes that happened within the current bucket."""

    def bucket_end(self) -> float:
        """Until when the current bucket takes calls (infinite for count windows)."""

    def refresh(self, now: float) -> None:
        """Drop what has aged out by ``now`` (time windows only)."""

    def clear(self) -> None: ...


class TimeWindow:
    """The last ``size`` buckets of ``bucket_seconds`` each."""

    __slots__ = (
        "_bucket_calls",
        "_bucket_end",
        "_bucket_failures",
        "_bucket_seconds",
        "_bucket_slow",
        "_index",
        "_size",
        "calls",
        "failures",
        "slow",
    )

    def __init__(self, size: int, bucket_seconds: float) -> None:
        self._size = size
        self._bucket_seconds = bucket_seconds
        self._bucket_calls = [0] * size
        self._bucket_failures = [0] * size
        self._bucket_slow = [0] * size
        self._index = 0
        self._bucket_end = float("-inf")
        self.calls = self.failures = self.slow = 0

    def add(self, now: float, failed: bool, slow: bool) -> None:
        if now >= self._bucket_end:
            self.refresh(now)
        index = self._index
        self._bucket_calls[index] += 1
        self.calls += 1
        if failed:
            self._bucket_failures[index] += 1
            self.failures += 1
        if slow:
            self._bucket_slow[index] += 1
            self.slow += 1

    def add_successes(self, count: int) -> None:
        self._bucket_calls[self._index] += count
        self.calls += count

    def bucket_end(self) -> float:
        return self._bucket_end

    def refresh(self, now: float) -> None:
        if now < self._bucket_end:
            return
        width = self._bucket_seconds
        if self._bucket_end == float("-inf") or now >= self._bucket_end + width * self._size:
            self.clear()
            self._bucket_end = (now // width + 1) * width
            return
        calls, failures, slow = self._bucket_calls, self._bucket_failures, self._bucket_slow
        while now >= self._bucket_end:
            index = self._index = (self._index + 1) % self._size
            calls[index] = failures[index] = slow[index] = 0
            self._bucket_end += width
        self.calls = sum(calls)
        self.failures = sum(failures)
        self.slow = sum(slow)

    def clear(self) -> None:
        size = self._size
        self._bucket_calls = [0] * size
        self._bucket_failures = [0] * size
        self._bucket_slow = [0] * size
        self.calls = self.failures = self.slow = 0


_FAILED = 1
_SLOW = 2


class CountWindow:
    """The last ``size`` calls, whenever they happened."""

    __slots__ = ("_flags", "_index", "_size", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._size = size
        self._flags = bytearray(size)
        self._index = 0
        self.calls = self.failures = self.slow = 0

    def add(self, now: float, failed: bool, slow: bool) -> None:
        index = self._index
        self._index = (index + 1) % self._size
        if self.calls == self._size:
            old = self._flags[index]
            if old & _FAILED:
                self.failures -= 1
            if old & _SLOW:
                self.slow -= 1
        else:
            self.calls += 1
        flags = 0
        if failed:
            flags = _FAILED
            self.failures += 1
        if slow:
            flags |= _SLOW
            self.slow += 1
        self._flags[index] = flags

    def add_successes(self, count: int) -> None:
        for _ in range(min(count, self._size)):
            self.add(0.0, False, False)

    def bucket_end(self) -> float:
        return float("inf")

    def refresh(self, now: float) -> None:
        return

    def clear(self) -> None:
        self._flags[:] = bytes(self._size)
        self._index = 0
        self.calls = self.failures = self.slow = 0
