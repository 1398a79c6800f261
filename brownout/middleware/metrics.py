"""``brownout.http.requests``: decisions counted locally, read by OpenTelemetry at collect."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

Key = tuple[str, str, str]
"""(feature, decision, level)."""


class DecisionCounts:
    """Request decisions by (feature, decision, level); the request path only bumps a dict
    entry. Label values come from the matrix and the level names, so they are bounded."""

    def __init__(self) -> None:
        self.counts: dict[Key, int] = {}

    def add(self, key: Key) -> None:
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1

    def expect(self, keys: Iterable[Key]) -> None:
        """Report ``keys`` at 0 until counted: Prometheus' ``increase()`` needs a sample
        before the first increment, or the first rejections of an outage go unseen."""
        for key in keys:
            self.counts.setdefault(key, 0)

    def export(self, meter_provider: MeterProvider | None = None) -> None:
        """Report the counts as the observable counter ``brownout.http.requests``."""
        meter = metrics.get_meter("brownout.middleware", meter_provider=meter_provider)
        meter.create_observable_counter(
            "brownout.http.requests",
            callbacks=[self._observe],
            unit="{request}",
            description="HTTP requests by feature and brownout decision.",
        )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {"feature": feature, "decision": decision, "level": level})
            for (feature, decision, level), count in list(self.counts.items())
        ]
