"""OpenTelemetry export of breaker state, calls, transitions and dependency latency.

Guarded calls only touch local counters (see ``brownout.breaker.latency``). This module
reads them when a metric reader collects:

- ``brownout.breaker.state``, ``brownout.breaker.calls`` and ``brownout.breaker.transitions``
  are observable instruments whose callbacks read the counters.
- ``brownout.dependency.duration`` is a real OpenTelemetry histogram. The SDK offers no
  public way to hand it pre-aggregated buckets, so at collect time the bridge replays the
  observations made since the last collection, each at the exact mean of its local bucket.
  Bucket counts and sums come out exact (min/max are bucket means). The SDK's cost per
  observation (~10 µs) moves from the request path to the collecting thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from brownout.breaker import (
    DURATION_BOUNDARIES,
    Breaker,
    BreakerRegistry,
    BreakerState,
    Outcome,
    breakers,
)

try:
    _VERSION = version("brownout")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    _VERSION = "0"

REPLAY_SHARE_OF_TIMEOUT = 0.5
"""Share of a collection's timeout the histogram replay may use before carrying over."""
_REPLAY_BATCH = 256  # observations replayed between deadline checks

_TIMED_OUTCOMES = (Outcome.SUCCESS, Outcome.FAILURE, Outcome.SLOW, Outcome.IGNORED)
_SeriesKey = tuple[str, str, Outcome]


class BreakerMetrics:
    """Exports every breaker of ``registry`` through ``meter_provider`` (the global one by
    default). One instance per meter provider; :func:`enable_metrics` keeps it that way."""

    def __init__(
        self,
        registry: BreakerRegistry = breakers,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.registry = registry
        meter = metrics.get_meter("brownout", _VERSION, meter_provider=meter_provider)
        self._lock = threading.Lock()
        # Per latency series: bucket counts and sums already handed to the histogram.
        self._exported: dict[_SeriesKey, tuple[list[int], list[float]]] = {}
        self._duration = meter.create_histogram(
            "brownout.dependency.duration",
            unit="s",
            description="Duration of calls to dependencies through brownout breakers.",
            explicit_bucket_boundaries_advisory=list(DURATION_BOUNDARIES),
        )
        meter.create_observable_gauge(
            "brownout.breaker.state",
            callbacks=[self._observe_state],
            description="1 for the state each breaker is in, 0 for the others.",
        )
        meter.create_observable_counter(
            "brownout.breaker.calls",
            callbacks=[self._observe_calls],
            unit="{call}",
            description="Calls through brownout breakers by outcome.",
        )
        meter.create_observable_counter(
            "brownout.breaker.transitions",
            callbacks=[self._observe_transitions],
            unit="{transition}",
            description="Breaker state changes.",
        )

    def _observe_state(self, options: CallbackOptions) -> Iterable[Observation]:
        # The first callback of a collection: hand the histogram what it has not seen yet,
        # within half the collection's time budget so the collection itself never times
        # out; what does not fit is carried over to the next collection.
        budget = options.timeout_millis / 1000 * REPLAY_SHARE_OF_TIMEOUT
        self.export_durations(deadline=time.monotonic() + budget)
        return [
            Observation(1 if state is breaker.state else 0, _labels(breaker, state=state.value))
            for breaker in self.registry
            for state in BreakerState
        ]

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, _labels(breaker, outcome=outcome.label))
            for breaker in self.registry
            for outcome, count in breaker.calls_by_outcome().items()
        ]

    def _observe_transitions(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, _labels(breaker, **{"from": before.value, "to": after.value}))
            for breaker in self.registry
            for (before, after), count in {
                **_TRAFFIC_TRANSITIONS,
                **breaker.transition_counts(),
            }.items()
        ]

    def export_durations(self, deadline: float | None = None) -> int:
        """Replay observations made since the last export into the histogram; returns how
        many. Stops at ``deadline`` (``time.monotonic()``) and resumes where it stopped on
        the next call. Collection calls this; tests and shutdown hooks may too."""
        replayed = 0
        with self._lock:
            for breaker in self.registry:
                replayed += self._export_breaker(breaker, deadline)
                if deadline is not None and time.monotonic() >= deadline:
                    break
        return replayed

    def _export_breaker(self, breaker: Breaker, deadline: float | None) -> int:
        replayed = 0
        record = self._duration.record
        for stats in breaker.operations():
            for outcome in _TIMED_OUTCOMES:
                histogram = stats.by_outcome[outcome]
                counts, sums = histogram.bucket_counts(), histogram.bucket_sums()
                key = (breaker.name, stats.name, outcome)
                exported = self._exported.get(key)
                if exported is None:
                    if not any(counts):
                        continue
                    exported = self._exported[key] = ([0] * len(counts), [0.0] * len(sums))
                done_counts, done_sums = exported
                attributes = _labels(breaker, operation=stats.name, outcome=outcome.label)
                for index, count in enumerate(counts):
                    new = count - done_counts[index]
                    if new <= 0:
                        continue
                    mean = (sums[index] - done_sums[index]) / new
                    for batch in range(0, new, _REPLAY_BATCH):
                        size = min(_REPLAY_BATCH, new - batch)
                        for _ in range(size):
                            record(mean, attributes)
                        done_counts[index] += size
                        done_sums[index] += mean * size
                        replayed += size
                        if deadline is not None and time.monotonic() >= deadline:
                            return replayed
        return replayed


# The transitions traffic drives, reported at 0 from creation: Prometheus' increase() needs
# a sample before the first increment, or the first outage of every breaker goes unseen.
_TRAFFIC_TRANSITIONS: dict[tuple[BreakerState, BreakerState], int] = dict.fromkeys(
    (
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
    ),
    0,
)


def _labels(breaker: Breaker, **extra: str) -> dict[str, str]:
    return {"component": breaker.component, "breaker": breaker.name, **extra}


_enabled: dict[tuple[int, int], tuple[object, BreakerMetrics]] = {}
_enabled_lock = threading.Lock()


def enable_metrics(
    meter_provider: MeterProvider | None = None, registry: BreakerRegistry = breakers
) -> BreakerMetrics:
    """Export ``registry``'s breakers through ``meter_provider`` (global by default).
    Calling it again with the same provider and registry returns the same exporter."""
    key = (id(meter_provider), id(registry))
    with _enabled_lock:
        entry = _enabled.get(key)
        if entry is None:
            # Holding the provider keeps its id from being reused by another object.
            entry = _enabled[key] = (meter_provider, BreakerMetrics(registry, meter_provider))
        return entry[1]
