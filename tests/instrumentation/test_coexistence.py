"""Our breakers and the official OpenTelemetry instrumentations, installed in either order:
both see every call, and uninstrumenting one side removes only that side's wrapper."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text
from sqlalchemy.engine import Engine

from brownout.breaker import BreakerRegistry, Outcome
from brownout.instrumentation.redis import RedisBreakerInstrumentor, redis_target
from brownout.instrumentation.sqlalchemy import SQLAlchemyBreakerInstrumentor, engine_target
from brownout.instrumentation.wrapping import is_wrapped
from tests.servers import RedisServer


@pytest.fixture
def registry() -> BreakerRegistry:
    return BreakerRegistry()


@pytest.fixture
def redis_sides() -> Iterator[tuple[RedisInstrumentor, RedisBreakerInstrumentor]]:
    tracing, breakers = RedisInstrumentor(), RedisBreakerInstrumentor()
    yield tracing, breakers
    for side in (tracing, breakers):
        if side.is_instrumented_by_opentelemetry:
            side.uninstrument()
    assert not is_wrapped(redis.Redis, "execute_command")
    assert not hasattr(redis.Redis.execute_command, "__wrapped__")


@pytest.fixture
def sqlalchemy_sides() -> Iterator[tuple[SQLAlchemyInstrumentor, SQLAlchemyBreakerInstrumentor]]:
    originals = (sqlalchemy.create_engine, vars(Engine)["connect"], vars(Engine)["raw_connection"])
    tracing, breakers = SQLAlchemyInstrumentor(), SQLAlchemyBreakerInstrumentor()
    yield tracing, breakers
    for side in (tracing, breakers):
        if side.is_instrumented_by_opentelemetry:
            side.uninstrument()
    assert (
        sqlalchemy.create_engine,
        vars(Engine)["connect"],
        vars(Engine)["raw_connection"],
    ) == originals


def _successes(registry: BreakerRegistry, name: str) -> int:
    return registry.get(name).calls_by_outcome()[Outcome.SUCCESS]


@pytest.mark.parametrize("ours_first", [True, False])
def test_redis_tracing_and_breakers_coexist(
    redis_sides: tuple[RedisInstrumentor, RedisBreakerInstrumentor],
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    registry: BreakerRegistry,
    redis_server: RedisServer,
    ours_first: bool,
) -> None:
    tracing, breakers = redis_sides
    steps = [
        lambda: breakers.instrument(registry=registry),
        lambda: tracing.instrument(tracer_provider=tracer_provider),
    ]
    for step in steps if ours_first else reversed(steps):
        step()
    client = redis.Redis(port=redis_server.port, retry=Retry(NoBackoff(), 0))
    name = redis_target(client)

    client.set("k", "v")
    assert [span.name for span in spans.get_finished_spans()] == ["SET"]
    assert _successes(registry, name) == 1

    tracing.uninstrument()
    client.get("k")
    assert len(spans.get_finished_spans()) == 1  # tracing gone
    assert _successes(registry, name) == 2  # breaker stays

    tracing.instrument(tracer_provider=tracer_provider)
    breakers.uninstrument()
    client.get("k")
    assert len(spans.get_finished_spans()) == 2  # tracing back
    assert _successes(registry, name) == 2  # breaker gone


@pytest.mark.parametrize("ours_first", [True, False])
def test_sqlalchemy_tracing_and_breakers_coexist(
    sqlalchemy_sides: tuple[SQLAlchemyInstrumentor, SQLAlchemyBreakerInstrumentor],
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    registry: BreakerRegistry,
    tmp_path: Path,
    ours_first: bool,
) -> None:
    tracing, breakers = sqlalchemy_sides
    steps = [
        lambda: breakers.instrument(registry=registry),
        # The official instrumentation declares "sqlalchemy < 2.1"; it works on 2.1 all the same.
        lambda: tracing.instrument(tracer_provider=tracer_provider, skip_dep_check=True),
    ]
    for step in steps if ours_first else reversed(steps):
        step()
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'co.db'}")
    name = engine_target(engine.url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        statement_spans = [s for s in spans.get_finished_spans() if s.name != "connect"]
        assert len(statement_spans) == 1
        assert _successes(registry, name) == 1

        breakers.uninstrument()
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        statement_spans = [s for s in spans.get_finished_spans() if s.name != "connect"]
        assert len(statement_spans) == 2  # tracing stays
        finished = len(spans.get_finished_spans())
        assert _successes(registry, name) == 1  # breaker gone

        breakers.instrument(registry=registry)
        tracing.uninstrument()
        later = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'co.db'}")
        with later.connect() as connection:
            connection.execute(text("SELECT 1"))
        later.dispose()
        assert len(spans.get_finished_spans()) == finished  # tracing gone
        assert _successes(registry, name) == 2  # breaker stays
    finally:
        engine.dispose()
