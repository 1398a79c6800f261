"""What an operator gets to see of a breaker: the texts the secret tests scan."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from brownout import BreakerRegistry


def label_values(reader: InMemoryMetricReader) -> list[str]:
    """Every metric attribute value the reader has collected."""
    data = reader.get_metrics_data()
    assert data is not None
    return [
        str(value)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
        for value in (point.attributes or {}).values()
    ]


def everything_shown(
    errors: list[str],
    registry: BreakerRegistry,
    caplog: pytest.LogCaptureFixture,
    labels: list[str],
) -> str:
    """Error texts, breaker names, log lines and metric labels, as one text to scan."""
    shown = [*errors, *(breaker.name for breaker in registry)]
    shown += [record.getMessage() for record in caplog.records]
    return "\n".join(shown + labels)
