"""Outage history per component and the recovery time predicted from it."""

from __future__ import annotations

from collections import deque
from statistics import median

# Past outages kept per component for prediction: recent behaviour matters most.
_KEPT = 20


class OutageHistory:
    """Tracks when each component went down and how long its past outages lasted."""

    __slots__ = ("_durations", "_started")

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._durations: dict[str, deque[float]] = {}

    def update(self, component: str, down: bool, now: float) -> float | None:
        """Note whether ``component`` is down at ``now``; return the outage's length in
        seconds when one just ended."""
        started = self._started.get(component)
        if down:
            if started is None:
                self._started[component] = now
            return None
        if started is None:
            return None
        del self._started[component]
        duration = now - started
        durations = self._durations.get(component)
        if durations is None:
            durations = self._durations.setdefault(component, deque(maxlen=_KEPT))
        durations.append(duration)
        return duration

    def started(self, component: str) -> float | None:
        return self._started.get(component)

    def starts(self) -> dict[str, float]:
        return dict(self._started)

    def durations(self, component: str) -> tuple[float, ...]:
        return tuple(self._durations.get(component, ()))

    def predict(self, component: str, breaker_eta: float | None, now: float) -> float | None:
        """Seconds until ``component`` is expected back: not before its breakers admit a
        probe, and not before its typical past outage has run its course. ``None`` when
        only an operator can bring it back (forced open)."""
        if breaker_eta is None:
            return None
        started = self._started.get(component)
        past = self._durations.get(component)
        if started is None or not past:
            return breaker_eta
        return max(breaker_eta, median(past) - (now - started))
