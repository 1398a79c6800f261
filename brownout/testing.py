"""Helpers for testing code that uses brownout: a clock you move by hand."""

from __future__ import annotations

import threading


class FakeClock:
    """A monotonic clock that only moves when told to. Pass it as ``clock=`` anywhere
    brownout takes one::

        clock = FakeClock()
        breaker = Breaker("db", clock=clock)
        clock.advance(10)
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back; advance by seconds >= 0")
        with self._lock:
            self._now += seconds
            return self._now


class FixedRandom:
    """A random source that always returns ``value`` (0.5 means no jitter)."""

    def __init__(self, value: float = 0.5) -> None:
        if not 0.0 <= value < 1.0:
            raise ValueError("value must be within [0, 1)")
        self.value = value

    def __call__(self) -> float:
        return self.value
