"""OpenTelemetry export of the aggregator's state.

Gauges and the transitions counter are observable instruments reading the last published
snapshot; the recovery histogram is recorded when an outage ends, which is rare.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from brownout.health.snapshot import Snapshot
from brownout.levels import Level
from brownout.telemetry import _VERSION


class HealthMetrics:
    """``brownout.health.score``, ``brownout.component.score``, ``brownout.level``,
    ``brownout.level.transitions`` and ``brownout.recovery.duration``."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        transitions: Callable[[], Mapping[tuple[Level, Level], int]],
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._transitions = transitions
        meter = metrics.get_meter("brownout.health", _VERSION, meter_provider=meter_provider)
        meter.create_observable_gauge(
            "brownout.health.score",
            callbacks=[self._observe_score],
            description="Overall health score, 0-100.",
        )
        meter.create_observable_gauge(
            "brownout.component.score",
            callbacks=[self._observe_components],
            description="Health score of each component, 0-100.",
        )
        meter.create_observable_gauge(
            "brownout.level",
            callbacks=[self._observe_level],
            description="Degradation level: 0 = optimal .. 4 = emergency.",
        )
        meter.create_observable_counter(
            "brownout.level.transitions",
            callbacks=[self._observe_transitions],
            unit="{transition}",
            description="Degradation level changes.",
        )
        self._recovery = meter.create_histogram(
            "brownout.recovery.duration",
            unit="s",
            description="How long components stayed down before recovering.",
            explicit_bucket_boundaries_advisory=[1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
        )

    def recovered(self, component: str, seconds: float) -> None:
        self._recovery.record(seconds, {"component": component})

    def _observe_score(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._snapshot().score)]

    def _observe_components(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(health.score, {"component": name})
            for name, health in self._snapshot().components.items()
        ]

    def _observe_level(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(int(self._snapshot().level))]

    def _observe_transitions(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {"from": old.label, "to": new.label})
            for (old, new), count in {**_EVERY_TRANSITION, **self._transitions()}.items()
        ]


# Every level change, reported at 0 from startup: Prometheus' increase() needs a sample
# before the first increment, or the first OPTIMAL -> DEGRADED goes unseen.
_EVERY_TRANSITION: dict[tuple[Level, Level], int] = {
    (old, new): 0 for old in Level for new in Level if old is not new
}
