"""Breaker metrics read back through a real PrometheusMetricReader."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from brownout import BreakerConfig, BreakerRegistry, CircuitOpenError
from brownout.telemetry import BreakerMetrics, enable_metrics
from brownout.testing import FakeClock, FixedRandom


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client import generate_latest

    samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if not k.startswith("otel_")}
            samples[(sample.name, frozenset(labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def prometheus() -> tuple[CollectorRegistry, MeterProvider]:
    collector = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=collector)])
    return collector, provider


def test_names_labels_and_values(prometheus: tuple[CollectorRegistry, MeterProvider]) -> None:
    collector, provider = prometheus
    clock = FakeClock()
    breakers = BreakerRegistry(clock=clock, random_source=FixedRandom(),
                               default_config=BreakerConfig(consecutive_failures=2))  # fmt: skip
    BreakerMetrics(breakers, provider)
    idle = breakers.breaker("s3 http://127.0.0.1:9000 us-east-1", component="s3")
    db = breakers.breaker("postgresql://db:5432/shop", component="database")

    @db
    def query(seconds: float, fail: bool = False) -> None:
        clock.advance(seconds)
        if fail:
            raise ConnectionError("server closed the connection")

    query(0.002)
    query(0.03)
    query(0.04)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            query(0.5, fail=True)
    with pytest.raises(CircuitOpenError):
        query(0.0)

    samples = scrape(collector)
    db_labels = {"component": "database", "breaker": "postgresql://db:5432/shop"}
    s3_labels = {"component": "s3", "breaker": idle.name}
    # State: 0/1 per state, reported from creation (the idle breaker too).
    assert value(samples, "brownout_breaker_state", **db_labels, state="open") == 1
    assert value(samples, "brownout_breaker_state", **db_labels, state="closed") == 0
    assert value(samples, "brownout_breaker_state", **s3_labels, state="closed") == 1
    # Calls by outcome.
    calls = "brownout_breaker_calls_total"
    assert value(samples, calls, **db_labels, outcome="success") == 3
    assert value(samples, calls, **db_labels, outcome="failure") == 2
    assert value(samples, calls, **db_labels, outcome="rejected") == 1
    assert value(samples, calls, **s3_labels, outcome="success") == 0
    # Transitions.
    assert value(samples, "brownout_breaker_transitions_total", **db_labels,
                 **{"from": "closed", "to": "open"}) == 1  # fmt: skip
    # The transitions traffic drives exist at 0 from creation, so increase() sees the first.
    for before, after in (("closed", "open"), ("open", "half_open"), ("half_open", "closed"),
                          ("half_open", "open")):  # fmt: skip
        assert value(samples, "brownout_breaker_transitions_total", **s3_labels,
                     **{"from": before, "to": after}) == 0  # fmt: skip
    # Duration histogram in seconds: exact counts per bucket and exact sums.
    histogram = "brownout_dependency_duration_seconds"
    ok = {**db_labels, "operation": query.__qualname__, "outcome": "success"}
    failed = {**db_labels, "operation": query.__qualname__, "outcome": "failure"}
    assert value(samples, f"{histogram}_count", **ok) == 3
    assert value(samples, f"{histogram}_sum", **ok) == pytest.approx(0.072)
    assert value(samples, f"{histogram}_bucket", **ok, le="0.005") == 1
    assert value(samples, f"{histogram}_bucket", **ok, le="0.025") == 1
    assert value(samples, f"{histogram}_bucket", **ok, le="0.05") == 3
    assert value(samples, f"{histogram}_bucket", **failed, le="0.5") == 2
    assert value(samples, f"{histogram}_sum", **failed) == pytest.approx(1.0)

    # A second scrape adds only what happened since the first.
    db.reset()
    query(0.001)
    samples = scrape(collector)
    assert value(samples, f"{histogram}_count", **ok) == 4
    assert value(samples, calls, **db_labels, outcome="success") == 4
    assert value(samples, "brownout_breaker_state", **db_labels, state="closed") == 1


def test_every_reader_sees_every_observation() -> None:
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[first, second])
    breakers = BreakerRegistry()
    BreakerMetrics(breakers, provider)
    breaker = breakers.breaker("dep")
    for _ in range(5):
        with breaker:
            pass

    def histogram_count(reader: InMemoryMetricReader) -> int:
        data = reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "brownout.dependency.duration":
                        return sum(p.count for p in metric.data.data_points)  # type: ignore[union-attr]
        return 0

    assert histogram_count(first) == 5
    assert histogram_count(second) == 5


def test_enable_metrics_is_idempotent_per_provider() -> None:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    breakers = BreakerRegistry()
    assert enable_metrics(provider, breakers) is enable_metrics(provider, breakers)
    assert enable_metrics(provider, breakers) is not enable_metrics(provider, BreakerRegistry())


def test_a_large_backlog_never_times_the_collection_out() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    breakers = BreakerRegistry()
    metrics = BreakerMetrics(breakers, provider)
    breaker = breakers.breaker("busy")
    for _ in range(20_000):  # ~0.2 s of replay at ~10 us per observation
        with breaker:
            pass
    # A 50 ms collection replays what fits in half its budget instead of timing out
    # (the SDK raises MetricsTimeoutError when callbacks overrun)...
    reader.collect(timeout_millis=50)
    # ...and the rest is carried over to the next export, none lost, none twice.
    carried_over = metrics.export_durations()
    assert 0 < carried_over < 20_000
    assert metrics.export_durations() == 0
