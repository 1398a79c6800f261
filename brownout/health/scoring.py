"""Component scores: penalties for error rate and latency against the component's SLA,
smoothed over time, then scaled by how many of its breakers admit calls."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from brownout.breaker import BreakerState
from brownout.settings import ComponentSLA


@dataclass(frozen=True, slots=True)
class Sample:
    """What one collection saw of one component since the previous collection."""

    calls: int
    errors: int
    latency: float | None
    """Seconds, at the configured quantile; ``None`` when nothing was timed."""

    @property
    def error_rate(self) -> float:
        return 100.0 * self.errors / self.calls if self.calls else 0.0


def penalty(value: float, warn: float, critical: float) -> float:
    """0 below ``warn``; 25 at ``warn`` rising to 75 at ``critical``; 100 at twice
    ``critical``. The step at ``warn`` makes crossing it visible in the score."""
    if value < warn:
        return 0.0
    if value < critical:
        return 25.0 + 50.0 * (value - warn) / (critical - warn)
    return min(100.0, 75.0 + 25.0 * (value - critical) / critical)


def sample_score(sample: Sample, sla: ComponentSLA) -> tuple[float, str]:
    """The score one sample earns, and what cost it points (empty when nothing did)."""
    lost = 0.0
    causes = []
    if sample.calls:
        rate = sample.error_rate
        errors = penalty(rate, sla.error_rate_warn, sla.error_rate_critical)
        if errors:
            lost += errors
            causes.append(f"errors {rate:.0f}%")
    if sample.latency is not None:
        slowness = penalty(sample.latency, sla.latency_warn_seconds, sla.latency_critical_seconds)
        if slowness:
            lost += slowness
            causes.append(f"latency {sample.latency * 1000:.0f} ms")
    return max(0.0, 100.0 - lost), ", ".join(causes)


class Smoothed:
    """An exponential moving average over time: after ``tau`` seconds of samples a new
    level has moved the value 63% of the way, whatever the sampling rate."""

    __slots__ = ("_at", "max_step", "tau", "value")

    def __init__(self, tau: float, value: float = 100.0, max_step: float = 1.0) -> None:
        self.tau = tau
        self.value = value
        self.max_step = max_step
        """The most seconds one sample stands for (the first one, too), so a collection
        after a long pause counts like any other instead of replacing the average."""
        self._at: float | None = None

    def update(self, value: float, now: float) -> float:
        if self.tau == 0:
            self.value = value
        else:
            step = self.max_step if self._at is None else min(now - self._at, self.max_step)
            self.value += (1.0 - math.exp(-step / self.tau)) * (value - self.value)
        self._at = now
        return self.value


# How much of a component one breaker in each state leaves standing.
_BREAKER_HEALTH = {
    BreakerState.CLOSED: 1.0,
    BreakerState.HALF_OPEN: 0.5,
    BreakerState.OPEN: 0.0,
    BreakerState.FORCED_OPEN: 0.0,
    BreakerState.DISABLED: 1.0,
    BreakerState.METRICS_ONLY: 1.0,
}


def breaker_factor(states: Iterable[BreakerState]) -> float:
    """The mean health of a component's breakers: 0 when every one is open."""
    total = count = 0.0
    for state in states:
        total += _BREAKER_HEALTH[state]
        count += 1
    return total / count if count else 1.0
