"""SQLAlchemy breakers on SQLite files and on the machine's PostgreSQL behind a fault proxy."""

from __future__ import annotations

import concurrent.futures
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import Engine

from brownout.breaker import (
    Breaker,
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitOpenError,
    Outcome,
    Transition,
)
from brownout.instrumentation.sqlalchemy import (
    SQLAlchemyBreakerInstrumentor,
    SQLAlchemyCircuitOpenError,
    engine_target,
    statement_operation,
)
from brownout.instrumentation.wrapping import is_wrapped
from tests.instrumentation.conftest import ProxyFactory, installed
from tests.instrumentation.faultproxy import FaultProxy
from tests.servers import eventually

FAST = BreakerConfig(
    consecutive_failures=3, open_seconds=0.3, open_max_seconds=0.3, jitter=0.0,
    half_open_permits=2,
)  # fmt: skip

Instrument = Callable[..., SQLAlchemyBreakerInstrumentor]


@pytest.fixture
def registry() -> BreakerRegistry:
    return BreakerRegistry()


@pytest.fixture
def instrument(registry: BreakerRegistry) -> Iterator[Instrument]:
    with installed(SQLAlchemyBreakerInstrumentor(), registry=registry, config=FAST) as install:
        yield install
    assert not is_wrapped(Engine, "raw_connection")
    assert not is_wrapped(sqlalchemy, "create_engine")


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Engines to dispose at teardown."""
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def _sqlite(path: Path, engines: list[Engine]) -> Engine:
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    engines.append(engine)
    return engine


def _select_one(engine: Engine) -> Any:
    with engine.connect() as connection:
        return connection.execute(text("SELECT 1")).scalar()


# -- SQLite ------------------------------------------------------------------------------


def test_engines_created_after_instrument_get_a_breaker_per_database(
    instrument: Instrument, registry: BreakerRegistry, tmp_path: Path, engines: list[Engine]
) -> None:
    instrument()
    engine = _sqlite(tmp_path / "app.db", engines)
    assert _select_one(engine) == 1
    breaker = registry.get(f"sqlite:///{tmp_path / 'app.db'}")
    assert breaker.component == "database"
    stats = {stats.name: stats for stats in breaker.operations()}
    assert stats["SELECT"].by_outcome[Outcome.SUCCESS].count == 1
    # Engines made by execution_options() share the dialect, so the breaker.
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text("SELECT 2"))
    assert stats["SELECT"].by_outcome[Outcome.SUCCESS].count == 2


def test_integrity_errors_never_trip(
    instrument: Instrument, registry: BreakerRegistry, tmp_path: Path, engines: list[Engine]
) -> None:
    instrument()
    engine = _sqlite(tmp_path / "app.db", engines)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO item VALUES (1)"))
    for _ in range(10):
        with pytest.raises(sqlalchemy.exc.IntegrityError), engine.begin() as connection:
            connection.execute(text("INSERT INTO item VALUES (1)"))
    with pytest.raises(sqlalchemy.exc.OperationalError), engine.connect() as connection:
        connection.execute(text("SELECT * FROM missing_table"))  # sqlite says Operational
    breaker = registry.get(engine_target(engine.url))
    assert breaker.state is BreakerState.CLOSED
    assert breaker.calls_by_outcome()[Outcome.IGNORED] == 10


def test_existing_engine_is_instrumented_through_the_engine_option(
    instrument: Instrument, registry: BreakerRegistry, tmp_path: Path, engines: list[Engine]
) -> None:
    engine = _sqlite(tmp_path / "before.db", engines)
    other = _sqlite(tmp_path / "other.db", engines)
    instrument(engine=engine)
    _select_one(engine)
    _select_one(other)
    assert engine_target(engine.url) in registry
    assert engine_target(other.url) not in registry


def test_instrument_engine_gives_one_engine_its_own_component(
    registry: BreakerRegistry, tmp_path: Path, engines: list[Engine]
) -> None:
    instrumentor = SQLAlchemyBreakerInstrumentor()
    engine = _sqlite(tmp_path / "reports.db", engines)
    instrumentor.instrument_engine(engine, component="reporting", registry=registry)
    try:
        _select_one(engine)
        assert registry.get(engine_target(engine.url)).component == "reporting"
    finally:
        instrumentor.uninstrument_engine(engine)
    assert not is_wrapped(Engine, "raw_connection")
    assert "do_execute" not in vars(engine.dialect)


async def test_async_engine_statements_go_through_the_breaker(
    instrument: Instrument, registry: BreakerRegistry, tmp_path: Path
) -> None:
    import sqlalchemy.ext.asyncio

    instrument()
    engine = sqlalchemy.ext.asyncio.create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/a.db")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))
            with pytest.raises(sqlalchemy.exc.IntegrityError):
                await connection.execute(text("INSERT INTO t VALUES (1)"))
        breaker = registry.get(engine_target(engine.url))
        names = {stats.name for stats in breaker.operations()}
        assert {"CREATE", "INSERT"} <= names
        assert breaker.calls_by_outcome()[Outcome.IGNORED] == 1
    finally:
        await engine.dispose()


def test_uninstrument_restores_engine_creation_and_checkout(registry: BreakerRegistry) -> None:
    import sqlalchemy.engine.create

    before = (
        sqlalchemy.create_engine,
        sqlalchemy.engine.create_engine,
        sqlalchemy.engine.create.create_engine,
        vars(Engine)["raw_connection"],
    )
    instrumentor = SQLAlchemyBreakerInstrumentor()
    instrumentor.instrument(registry=registry)
    engine = sqlalchemy.create_engine("sqlite://")
    assert "do_execute" in vars(engine.dialect)
    instrumentor.uninstrument()
    after = (
        sqlalchemy.create_engine,
        sqlalchemy.engine.create_engine,
        sqlalchemy.engine.create.create_engine,
        vars(Engine)["raw_connection"],
    )
    assert after == before
    assert "do_execute" not in vars(engine.dialect)


def test_open_error_is_an_operational_error() -> None:
    error = SQLAlchemyCircuitOpenError("postgresql://db:5432/shop", "database", 2.5)
    assert isinstance(error, sqlalchemy.exc.OperationalError)
    assert isinstance(error, sqlalchemy.exc.DBAPIError)
    assert isinstance(error, CircuitOpenError)
    assert error.args == ("postgresql://db:5432/shop", "database", 2.5)
    assert error.retry_after == 2.5
    assert "is open for another 2.5s" in str(error)
    assert "Circuit" in repr(error)
    with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
        raise error
    assert caught.value is error


def test_targets_and_operations_carry_no_secrets_or_sql() -> None:
    url = "postgresql+psycopg://app:s3cret@db.internal:5432/shop?sslmode=require&password=x"
    assert engine_target(url) == "postgresql://db.internal:5432/shop"
    assert engine_target("sqlite://") == "sqlite://"
    assert statement_operation("  select * from users where email = 'a@b'") == "SELECT"
    assert statement_operation("(SELECT 1) UNION (SELECT 2)") == "SELECT"
    assert statement_operation("frobnicate the users") == "OTHER"
    assert statement_operation(None) == "OTHER"


# -- PostgreSQL behind the fault proxy ---------------------------------------------------


@pytest.fixture
def pg_proxy(postgres_url: str, fault_proxy: ProxyFactory) -> FaultProxy:
    return fault_proxy("127.0.0.1", 5432)


def _pg_engine(proxy: FaultProxy, engines: list[Engine], **kwargs: Any) -> Engine:
    kwargs.setdefault("connect_args", {"connect_timeout": 2})
    engine = sqlalchemy.create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test", **kwargs
    )
    engines.append(engine)
    return engine


def _fail_until_open(engine: Engine, breaker: Breaker, attempts: int = 10) -> None:
    for _ in range(attempts):
        if breaker.state is BreakerState.OPEN:
            return
        with pytest.raises(sqlalchemy.exc.OperationalError):
            _select_one(engine)
    assert breaker.state is BreakerState.OPEN


def _rejects_without_checkout(engine: Engine, breaker: Breaker) -> None:
    checked_out = engine.pool.checkedout()
    rejected = breaker.calls_by_outcome()[Outcome.REJECTED]
    for _ in range(5):
        with pytest.raises(sqlalchemy.exc.OperationalError) as caught:
            _select_one(engine)
        assert isinstance(caught.value, SQLAlchemyCircuitOpenError)
    assert breaker.calls_by_outcome()[Outcome.REJECTED] == rejected + 5
    assert engine.pool.checkedout() == checked_out == 0


def test_refused_database_opens_rejects_before_the_pool_and_recovers(
    instrument: Instrument, registry: BreakerRegistry, pg_proxy: FaultProxy, engines: list[Engine]
) -> None:
    instrument()
    engine = _pg_engine(pg_proxy, engines)
    assert _select_one(engine) == 1
    breaker = registry.get(engine_target(engine.url))
    assert breaker.name == f"postgresql://127.0.0.1:{pg_proxy.port}/test"

    pg_proxy.refuse()
    _fail_until_open(engine, breaker)
    _rejects_without_checkout(engine, breaker)

    pg_proxy.passthrough()

    def answers() -> bool:
        try:
            return _select_one(engine) == 1 and breaker.state is BreakerState.CLOSED
        except sqlalchemy.exc.OperationalError:
            return False

    eventually(answers)


def test_reset_connections_are_failures(
    instrument: Instrument, registry: BreakerRegistry, pg_proxy: FaultProxy, engines: list[Engine]
) -> None:
    instrument()
    engine = _pg_engine(pg_proxy, engines)
    _select_one(engine)
    breaker = registry.get(engine_target(engine.url))
    pg_proxy.reset()
    _fail_until_open(engine, breaker)
    _rejects_without_checkout(engine, breaker)
    assert breaker.calls_by_outcome()[Outcome.FAILURE] >= 3


def test_slow_database_trips_on_the_slow_call_rule(
    instrument: Instrument, registry: BreakerRegistry, pg_proxy: FaultProxy, engines: list[Engine]
) -> None:
    config = BreakerConfig(
        slow_call_seconds=0.1, slow_call_rate_threshold=50, minimum_calls=3,
        consecutive_failures=0, open_seconds=5, jitter=0.0,
    )  # fmt: skip
    instrument(config=config)
    engine = _pg_engine(pg_proxy, engines)
    _select_one(engine)  # connected before the latency starts
    breaker = registry.get(engine_target(engine.url))
    pg_proxy.latency(0.08)  # per chunk and direction: each round trip > 0.1 s
    while breaker.state is BreakerState.CLOSED:
        assert _select_one(engine) == 1  # slow, but answered
    assert breaker.state is BreakerState.OPEN
    assert breaker.calls_by_outcome()[Outcome.FAILURE] == 0
    assert breaker.calls_by_outcome()[Outcome.SLOW] >= 2
    _rejects_without_checkout(engine, breaker)


def test_blackholed_database_stops_consuming_pool_connections(
    instrument: Instrument, registry: BreakerRegistry, pg_proxy: FaultProxy, engines: list[Engine]
) -> None:
    # Rates only: no consecutive-failure rule, so the window's rates decide the trip.
    config = BreakerConfig(
        slow_call_seconds=0.5, slow_call_rate_threshold=50, failure_rate_threshold=50,
        minimum_calls=3, consecutive_failures=0, open_seconds=30, jitter=0.0,
    )  # fmt: skip
    instrument(config=config)
    engine = _pg_engine(pg_proxy, engines, pool_size=2, max_overflow=0, pool_timeout=0.5)
    _select_one(engine)
    breaker = registry.get(engine_target(engine.url))
    heard: list[Transition] = []
    breaker.add_listener(heard.append)
    engine.dispose()  # no pooled connection left: every checkout must connect
    pg_proxy.blackhole()

    def attempt() -> str:
        try:
            _select_one(engine)
        except SQLAlchemyCircuitOpenError:
            return "rejected"
        except sqlalchemy.exc.TimeoutError:
            return "pool timeout"
        except sqlalchemy.exc.OperationalError:
            return "connect timeout"
        return "answered"

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        first = list(pool.map(lambda _: attempt(), range(6)))
    assert "answered" not in first
    assert breaker.state is BreakerState.OPEN
    # Nothing answers in a blackhole until a timeout fires, so every call that completes
    # is a failure that also took longer than slow_call_seconds: both rules fire, at the
    # same rate (the window also holds the statements that ran before the blackhole).
    (trip,) = heard
    rates = re.fullmatch(
        r"failure rate (\d+)% >= 50% and slow-call rate (\d+)% >= 50% \(slower than 0.5s\) "
        r"over \d+ calls",
        trip.reason,
    )
    assert rates is not None, trip.reason
    assert rates[1] == rates[2]
    # 2 connects hang until connect_timeout; the others time out waiting for the pool.
    assert first.count("connect timeout") <= 2
    assert engine.pool.checkedout() == 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        later = list(pool.map(lambda _: attempt(), range(20)))
    assert later == ["rejected"] * 20
    assert engine.pool.checkedout() == 0


def test_unique_violations_on_postgres_never_trip(
    instrument: Instrument, registry: BreakerRegistry, pg_proxy: FaultProxy, engines: list[Engine]
) -> None:
    instrument()
    engine = _pg_engine(pg_proxy, engines)
    table = f"brownout_{uuid.uuid4().hex[:12]}"
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)"))
    try:
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO {table} VALUES (1)"))
        for _ in range(6):
            with pytest.raises(sqlalchemy.exc.IntegrityError), engine.begin() as connection:
                connection.execute(text(f"INSERT INTO {table} VALUES (1)"))
        breaker = registry.get(engine_target(engine.url))
        assert breaker.state is BreakerState.CLOSED
        assert breaker.calls_by_outcome()[Outcome.IGNORED] == 6
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE {table}"))
