"""The path through OpenTelemetry: a user's instrument drives the level, and the
aggregator's own metrics and log lines come out."""

from __future__ import annotations

import contextlib
import json
import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from brownout import BreakerRegistry
from brownout.health import ComponentState, SnapshotBoard
from brownout.health.aggregator import HealthAggregator
from brownout.levels import Level
from brownout.settings import HealthSettings, MetricRuleSettings
from brownout.testing import FakeClock
from tests.health.conftest import Build


def test_level_driven_by_an_official_otel_histogram(
    clock: FakeClock, registry: BreakerRegistry, provider: MeterProvider
) -> None:
    # The semantic-conventions histogram the official DB instrumentations record, with
    # error.type on failed operations. No brownout breaker guards the database here.
    duration = provider.get_meter("user-db").create_histogram(
        "db.client.operation.duration", unit="s"
    )
    registry.breaker("cache-1", component="cache")
    settings = HealthSettings(
        smoothing_seconds=0,
        metrics=(
            MetricRuleSettings(
                component="database",
                instrument="db.client.operation.duration",
                attributes={"db.system.name": "postgresql"},
            ),
        ),
    )
    aggregator = HealthAggregator(
        settings, registry=registry, board=SnapshotBoard(), meter_provider=provider, clock=clock
    )
    try:
        ok = {"db.system.name": "postgresql"}
        for _ in range(50):
            duration.record(0.004, ok)
        # Another system's errors do not count for this rule.
        duration.record(0.004, {"db.system.name": "mysql", "error.type": "timeout"})
        clock.advance(1)
        snapshot = aggregator.tick()
        assert snapshot.level is Level.OPTIMAL
        assert snapshot.components["database"].state is ComponentState.HEALTHY

        failed = {**ok, "error.type": "psycopg.OperationalError"}
        for _ in range(30):
            duration.record(0.002, failed)
        for _ in range(10):
            duration.record(0.004, ok)
        clock.advance(1)
        snapshot = aggregator.tick()
        database = snapshot.components["database"]
        assert database.breakers == ()
        assert database.state is ComponentState.CRITICAL
        assert "errors 75%" in snapshot.reason
        # Renormalised over database (0.4) and cache (0.2); the floor holds LIMITED or worse.
        assert snapshot.level >= Level.LIMITED

        # Slow but successful: p95 over the critical 0.5 s.
        for _ in range(20):
            duration.record(0.9, ok)
        clock.advance(1)
        snapshot = aggregator.tick()
        assert snapshot.components["database"].state is ComponentState.CRITICAL
        assert "latency" in snapshot.reason
        assert "errors" not in snapshot.reason

        # Fast again: the component recovers (levels then climb with the dwell).
        for _ in range(20):
            duration.record(0.003, ok)
        clock.advance(1)
        snapshot = aggregator.tick()
        assert snapshot.components["database"].state is not ComponentState.CRITICAL
    finally:
        aggregator.close()


def test_breaker_error_rate_arrives_through_the_reader(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build(smoothing_seconds=0)
    database = deps["database"]
    database.up = False
    for _ in range(3):
        with contextlib.suppress(ConnectionError):
            database.call()
    database.up = True
    for _ in range(3):
        database.call()
    clock.advance(1)
    snapshot = aggregator.tick()
    # 3 of 6 calls failed: read from brownout.breaker.calls by the in-process reader.
    assert "database critical (errors 50%)" in snapshot.reason


def values(reader: InMemoryMetricReader) -> dict[tuple[str, frozenset[tuple[str, object]]], object]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[tuple[str, frozenset[tuple[str, object]]], object] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset((point.attributes or {}).items()))
                    found[key] = getattr(point, "value", None) or getattr(point, "count", None)
    return found


def test_health_metrics(clock: FakeClock, registry: BreakerRegistry) -> None:
    exported = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[exported])
    from tests.health.conftest import Dependency

    cache = Dependency(registry.breaker("cache-1", component="cache"), clock)
    Dependency(registry.breaker("db-1", component="database"), clock)
    aggregator = HealthAggregator(
        registry=registry, board=SnapshotBoard(), meter_provider=provider, clock=clock
    )
    try:
        aggregator.evaluate()
        cache.die()
        clock.advance(12)
        cache.heal()
        aggregator.evaluate()
        found = values(exported)
        # Cache is a third of this service (0.2 of 0.6): its outage means LIMITED.
        assert found[("brownout.level", frozenset())] == 2
        assert found[("brownout.component.score", frozenset({("component", "cache")}))] == 100
        score = found[("brownout.health.score", frozenset())]
        assert isinstance(score, float)
        assert score > 99
        transition = frozenset({("from", "optimal"), ("to", "limited")})
        assert found[("brownout.level.transitions", transition)] == 1
        # Every other level change is there at 0, so increase() will see its first.
        level_changes = {key for key in found if key[0] == "brownout.level.transitions"}
        assert len(level_changes) == 5 * 4
        assert found[("brownout.recovery.duration", frozenset({("component", "cache")}))] == 1
        (duration,) = aggregator.outage_durations("cache")
        assert duration == pytest.approx(12, abs=0.01)
    finally:
        aggregator.close()
        provider.shutdown()


def test_each_level_change_logs_one_json_line(
    build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    aggregator, deps = build()
    tracer = TracerProvider().get_tracer("test")
    with caplog.at_level(logging.INFO, logger="brownout.health"):
        with tracer.start_as_current_span("request") as span:
            deps["cache"].die()
            aggregator.evaluate()
            aggregator.evaluate()
        aggregator.force_level("optimal", reason="operator says fine")
    lines = [r for r in caplog.records if r.name == "brownout.health"]
    assert len(lines) == 2
    worse, better = (json.loads(r.getMessage()) for r in lines)
    assert lines[0].levelno == logging.WARNING
    assert lines[1].levelno == logging.INFO
    assert worse["event"] == "brownout.level_change"
    assert (worse["old"], worse["new"], worse["score"]) == ("optimal", "degraded", 80.0)
    assert worse["contributors"] == [{"component": "cache", "score": 0.0, "points": 20.0}]
    assert "cache critical" in worse["reason"]
    assert worse["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "trace_id" not in better
    assert better["reason"] == "forced: operator says fine"
