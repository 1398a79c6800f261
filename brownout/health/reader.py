"""The aggregator's in-process OpenTelemetry reader.

It attaches to the service's ``MeterProvider`` like any other reader, with delta
temporality, so each collection yields what happened since the previous one. It reads our
own breaker metrics (``brownout.breaker.calls`` for error rates,
``brownout.dependency.duration`` for latency) and any instrument named by a
:class:`~brownout.settings.MetricRuleSettings` (``db.client.operation.duration`` from the
official instrumentations, a custom histogram or counter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
    NumberDataPoint,
)

from brownout.health.scoring import Sample
from brownout.settings import MetricRuleSettings

BREAKER_CALLS = "brownout.breaker.calls"
DEPENDENCY_DURATION = "brownout.dependency.duration"

_CALLED = frozenset({"success", "failure", "slow"})
_TIMED = frozenset({"success", "slow"})

_DELTA = AggregationTemporality.DELTA
_CUMULATIVE = AggregationTemporality.CUMULATIVE

# Explicit bounds, bucket counts, and the smallest and largest values seen.
_Buckets = tuple[tuple[float, ...], list[int], float, float]


class _Tally:
    __slots__ = ("calls", "errors", "histograms")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.histograms: dict[tuple[float, ...], _Buckets] = {}

    def add_buckets(self, point: HistogramDataPoint, scale: float) -> None:
        bounds = tuple(bound * scale for bound in point.explicit_bounds)
        entry = self.histograms.get(bounds)
        if entry is None:
            entry = (bounds, [0] * len(point.bucket_counts), float("inf"), 0.0)
        counts = entry[1]
        for index, count in enumerate(point.bucket_counts):
            counts[index] += count
        self.histograms[bounds] = (
            bounds,
            counts,
            min(entry[2], point.min * scale),
            max(entry[3], point.max * scale),
        )

    def sample(self, quantile: float) -> Sample:
        latencies = [
            value
            for bounds, counts, smallest, largest in self.histograms.values()
            if (value := bucket_quantile(bounds, counts, smallest, largest, quantile)) is not None
        ]
        return Sample(self.calls, self.errors, max(latencies) if latencies else None)


def bucket_quantile(
    bounds: Sequence[float],
    counts: Sequence[int],
    smallest: float,
    largest: float,
    quantile: float,
) -> float | None:
    """The ``quantile`` of a bucketed distribution, interpolated linearly within its
    bucket narrowed to the smallest and largest values seen (so coarse default buckets
    still give a usable estimate); ``None`` when it is empty."""
    total = sum(counts)
    if not total:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = max(bounds[index - 1] if index > 0 else 0.0, smallest)
            upper = min(bounds[index], largest) if index < len(bounds) else largest
            upper = max(upper, lower)
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return largest


class HealthReader(MetricReader):
    """Pull-only: nothing is read until :meth:`read` is called (by the aggregator's
    ``collect``, on the recovery loop's heartbeat)."""

    def __init__(self, rules: Iterable[MetricRuleSettings] = (), *, quantile: float = 0.95) -> None:
        super().__init__(
            preferred_temporality={
                Counter: _DELTA,
                Histogram: _DELTA,
                ObservableCounter: _DELTA,
                UpDownCounter: _CUMULATIVE,
                ObservableUpDownCounter: _CUMULATIVE,
                ObservableGauge: _CUMULATIVE,
            }
        )
        self.quantile = quantile
        self._rules: dict[str, tuple[MetricRuleSettings, ...]] = {}
        for rule in rules:
            self._rules[rule.instrument] = (*self._rules.get(rule.instrument, ()), rule)
        self._received: MetricsData | None = None

    @property
    def rule_components(self) -> frozenset[str]:
        return frozenset(rule.component for rules in self._rules.values() for rule in rules)

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._received = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._received = None

    def read(self) -> dict[str, Sample]:
        """Collect now and return, per component, what happened since the last read."""
        self._take()
        self.collect()
        data = self._take()
        return {} if data is None else self.summarise(data)

    def _take(self) -> MetricsData | None:
        data, self._received = self._received, None
        return data

    def summarise(self, data: MetricsData) -> dict[str, Sample]:
        tallies: dict[str, _Tally] = {}
        rules = self._rules
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                ours = scope.scope.name == "brownout"
                for metric in scope.metrics:
                    name = metric.name
                    points: Sequence[Any] = getattr(metric.data, "data_points", ())
                    if ours and name == BREAKER_CALLS:
                        _add_breaker_calls(tallies, points)
                    elif ours and name == DEPENDENCY_DURATION:
                        _add_breaker_latency(tallies, points)
                    for rule in rules.get(name, ()):
                        _add_rule(tallies, rule, points)
        return {name: tally.sample(self.quantile) for name, tally in tallies.items()}


def _tally(tallies: dict[str, _Tally], component: str) -> _Tally:
    tally = tallies.get(component)
    if tally is None:
        tally = tallies[component] = _Tally()
    return tally


def _add_breaker_calls(tallies: dict[str, _Tally], points: Sequence[NumberDataPoint]) -> None:
    for point in points:
        attributes = point.attributes or {}
        outcome = attributes.get("outcome")
        if outcome not in _CALLED or not point.value:
            continue
        tally = _tally(tallies, str(attributes.get("component", "external")))
        tally.calls += int(point.value)
        if outcome == "failure":
            tally.errors += int(point.value)


def _add_breaker_latency(tallies: dict[str, _Tally], points: Sequence[HistogramDataPoint]) -> None:
    for point in points:
        attributes = point.attributes or {}
        if attributes.get("outcome") in _TIMED and point.count:
            _tally(tallies, str(attributes.get("component", "external"))).add_buckets(point, 1.0)


def _matches(attributes: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    return all(str(attributes.get(key)) == value for key, value in wanted.items())


def _is_error(attributes: Mapping[str, Any], rule: MetricRuleSettings) -> bool:
    value = attributes.get(rule.error_attribute)
    if value is None:
        return False
    return not rule.error_values or str(value) in rule.error_values


def _add_rule(tallies: dict[str, _Tally], rule: MetricRuleSettings, points: Sequence[Any]) -> None:
    for point in points:
        attributes = point.attributes or {}
        if not _matches(attributes, rule.attributes):
            continue
        if isinstance(point, HistogramDataPoint):
            count = point.count
            if not count:
                continue
            tally = _tally(tallies, rule.component)
            error = _is_error(attributes, rule)
            if rule.latency and not error:
                tally.add_buckets(point, rule.unit_seconds)
            if rule.errors:
                tally.calls += count
                tally.errors += count if error else 0
        elif isinstance(point, NumberDataPoint) and rule.errors and point.value:
            tally = _tally(tallies, rule.component)
            tally.calls += int(point.value)
            if _is_error(attributes, rule):
                tally.errors += int(point.value)
