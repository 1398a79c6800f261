"""Redis breakers against a private redis-server that the tests kill and restart."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest
import redis
import redis.asyncio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from redis.backoff import NoBackoff
from redis.retry import Retry

import brownout.instrumentation.redis
from brownout.breaker import BreakerConfig, BreakerRegistry, BreakerState, CircuitOpenError, Outcome
from brownout.features import CACHE_READ, CACHE_WRITE
from brownout.health.snapshot import Snapshot, SnapshotBoard
from brownout.instrumentation.redis import (
    RedisBreakerInstrumentor,
    RedisCircuitOpenError,
    redis_target,
)
from brownout.instrumentation.wrapping import is_wrapped
from brownout.levels import Level
from tests.instrumentation.conftest import installed
from tests.instrumentation.exposure import label_values
from tests.servers import RedisServer, eventually, eventually_async

FAST = BreakerConfig(
    consecutive_failures=3, open_seconds=0.2, open_max_seconds=0.2, jitter=0.0,
    half_open_permits=2,
)  # fmt: skip

Instrument = Callable[..., RedisBreakerInstrumentor]


@pytest.fixture
def registry() -> BreakerRegistry:
    return BreakerRegistry()


@pytest.fixture
def instrument(registry: BreakerRegistry) -> Iterator[Instrument]:
    """``instrument(**options)``: instrument redis with a private registry."""
    with installed(RedisBreakerInstrumentor(), registry=registry, config=FAST) as install:
        yield install
    assert not is_wrapped(redis.Redis, "execute_command")


def _client(server: RedisServer, db: int = 0) -> redis.Redis:
    # No retries: each call is one attempt, so the breaker sees every failure.
    return redis.Redis(
        host="127.0.0.1", port=server.port, db=db, retry=Retry(NoBackoff(), 0), socket_timeout=2
    )


def _async_client(server: RedisServer) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(server.url, retry=None, socket_timeout=2)


def test_names_the_breaker_by_target_in_the_cache_component(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    instrument()
    client = _client(redis_server)
    client.set("k", "v")
    assert client.get("k") == b"v"
    breaker = registry.get(f"redis://127.0.0.1:{redis_server.port}/0")
    assert breaker.component == "cache"
    assert {stats.name for stats in breaker.operations()} >= {"SET", "GET"}
    assert breaker.calls_by_outcome()[Outcome.SUCCESS] == 2


def test_killed_server_opens_the_breaker_then_recovery_closes_it(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    instrument()
    client = _client(redis_server)
    client.set("k", "v")
    breaker = registry.get(redis_target(client))

    redis_server.kill()
    for _ in range(3):
        with pytest.raises(redis.exceptions.ConnectionError) as failed:
            client.get("k")
        assert not isinstance(failed.value, CircuitOpenError)
    assert breaker.state is BreakerState.OPEN

    # Best of 5, so one scheduler hiccup on a busy machine cannot fail the test; a
    # rejection that touched the network would take milliseconds every time.
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        with pytest.raises(redis.exceptions.ConnectionError) as rejected:
            client.get("k")
        timings.append(time.perf_counter() - started)
        assert isinstance(rejected.value, RedisCircuitOpenError)
    fastest = min(timings)
    assert fastest < 0.001, f"an open breaker must fail fast, took {fastest * 1e3:.2f} ms"
    assert rejected.value.breaker == breaker.name
    assert isinstance(rejected.value.__cause__, redis.exceptions.ConnectionError)

    redis_server.start()

    def answers() -> bool:
        try:
            return client.get("missing") is None and breaker.state is BreakerState.CLOSED
        except redis.exceptions.ConnectionError:
            return False

    eventually(answers)
    transitions = breaker.transition_counts()
    assert transitions[(BreakerState.OPEN, BreakerState.HALF_OPEN)] >= 1
    assert transitions[(BreakerState.HALF_OPEN, BreakerState.CLOSED)] == 1


async def test_asyncio_client_fails_fast_and_recovers(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    instrument()
    client = _async_client(redis_server)
    try:
        await client.set("k", "v")
        assert await client.get("k") == b"v"
        breaker = registry.get(redis_target(client))

        redis_server.kill()
        for _ in range(3):
            with pytest.raises(redis.exceptions.ConnectionError):
                await client.get("k")
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(RedisCircuitOpenError):
            await client.get("k")

        redis_server.start()

        async def answers() -> bool:
            try:
                return await client.get("k") is None and breaker.state is BreakerState.CLOSED
            except redis.exceptions.ConnectionError:
                return False

        await eventually_async(answers)
    finally:
        await client.aclose()


@pytest.mark.parametrize("transaction", [True, False])
def test_pipelines_go_through_the_breaker(
    instrument: Instrument,
    registry: BreakerRegistry,
    redis_server: RedisServer,
    transaction: bool,
) -> None:
    instrument()
    client = _client(redis_server)
    with client.pipeline(transaction=transaction) as pipe:
        assert pipe.set("a", 1).get("a").execute() == [True, b"1"]
    breaker = registry.get(redis_target(client))
    operation = "MULTI" if transaction else "PIPELINE"
    stats = {stats.name: stats for stats in breaker.operations()}
    assert stats[operation].by_outcome[Outcome.SUCCESS].count == 1

    redis_server.kill()
    for _ in range(3):
        with pytest.raises(redis.exceptions.ConnectionError), client.pipeline(transaction) as pipe:
            pipe.get("a").execute()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(RedisCircuitOpenError), client.pipeline(transaction) as pipe:
        pipe.get("a").execute()


@pytest.mark.parametrize("transaction", [True, False])
async def test_asyncio_pipeline_goes_through_the_breaker(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer, transaction: bool
) -> None:
    instrument()
    client = _async_client(redis_server)
    try:
        async with client.pipeline(transaction=transaction) as pipe:
            assert await pipe.set("a", 1).get("a").execute() == [True, b"1"]
        breaker = registry.get(redis_target(client))
        stats = {stats.name: stats for stats in breaker.operations()}
        operation = "MULTI" if transaction else "PIPELINE"
        assert stats[operation].by_outcome[Outcome.SUCCESS].count == 1
    finally:
        await client.aclose()


def test_watch_runs_immediately_through_the_breaker(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    instrument()
    client = _client(redis_server)
    with client.pipeline() as pipe:
        pipe.watch("a")
        assert pipe.get("a") is None  # immediate: watching
        pipe.multi()
        pipe.set("a", 1)
        assert pipe.execute() == [True]
    names = {stats.name for stats in registry.get(redis_target(client)).operations()}
    assert {"WATCH", "GET", "MULTI"} <= names


def test_response_errors_never_trip(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    instrument()
    client = _client(redis_server)
    client.set("text", "v")
    for _ in range(20):
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            client.lpush("text", "x")
    with pytest.raises(redis.exceptions.ResponseError):
        client.eval("return redis.call('NOPE')", 0)
    breaker = registry.get(redis_target(client))
    assert breaker.state is BreakerState.CLOSED
    calls = breaker.calls_by_outcome()
    assert calls[Outcome.IGNORED] == 21
    assert calls[Outcome.FAILURE] == 0


def test_operation_labels_are_bounded_command_names(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    instrument()
    client = _client(redis_server)
    client.execute_command("get", "user:42:session")
    with pytest.raises(redis.exceptions.ResponseError):
        client.execute_command("get user:42 {weird}")
    with pytest.raises(redis.exceptions.ResponseError):
        client.execute_command(b"\xffbad")
    names = {stats.name for stats in registry.get(redis_target(client)).operations()}
    assert names == {"call", "GET", "OTHER"}


def _publish(board: SnapshotBoard, level: Level) -> None:
    board.publish(Snapshot(level=level, policy=board.matrix.policy(level)))


def test_cache_reads_miss_and_writes_are_skipped_when_the_level_turns_them_off(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    board = SnapshotBoard()
    instrument(enforce_features=True, board=board, cache=True)
    client = _client(redis_server)
    client.set("k", "v")
    client.hset("h", mapping={"f": "1"})
    breaker = registry.get(redis_target(client))

    _publish(board, Level.DEGRADED)  # cache_write off, cache_read on
    assert not board.snapshot.enabled(CACHE_WRITE)
    assert board.snapshot.enabled(CACHE_READ)
    assert client.set("new", "v") is None  # "not stored"
    assert client.expire("k", 10) is False
    assert client.get("k") == b"v"
    assert client.delete("k") == 1  # invalidations always run: no stale entry survives
    assert client.get("k") is None
    client.set("k", "v")  # (skipped)

    _publish(board, Level.LIMITED)  # both off
    calls_before = sum(breaker.calls_by_outcome().values())
    assert client.get("k") is None
    assert client.mget("k", "h") == [None, None]
    assert client.hget("h", "f") is None
    assert client.hgetall("h") == {}
    assert client.exists("k") == 0
    assert sum(breaker.calls_by_outcome().values()) == calls_before  # redis never called
    assert client.incr("counter") == 1  # not a cache command: runs

    _publish(board, Level.OPTIMAL)
    assert client.get("new") is None  # the skipped writes never reached redis
    assert client.get("k") is None
    assert client.hgetall("h") == {b"f": b"1"}


def test_only_clients_marked_as_caches_obey_the_cache_features(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    board = SnapshotBoard()
    instrumentor = instrument(enforce_features=True, board=board)
    plain = _client(redis_server)
    cache = _client(redis_server)
    instrumentor.instrument_client(cache, cache=True)
    try:
        plain.set("k", "v")
        _publish(board, Level.LIMITED)
        assert plain.get("k") == b"v"
        assert cache.get("k") is None
        assert cache.set("k", "other") is None
        assert plain.get("k") == b"v"
    finally:
        instrumentor.uninstrument_client(cache)


def test_instrument_client_takes_over_clients_already_in_use_and_hands_back(
    instrument: Instrument, redis_server: RedisServer
) -> None:
    # Each client keeps the binding it resolved; instrument_client must reach clients
    # that already made calls, including every client sharing the connection pool.
    board = SnapshotBoard()
    instrumentor = instrument(enforce_features=True, board=board)
    client = _client(redis_server)
    sharing = redis.Redis(connection_pool=client.connection_pool)
    client.set("k", "v")
    assert sharing.get("k") == b"v"
    _publish(board, Level.LIMITED)
    assert client.get("k") == b"v"  # not a cache yet

    instrumentor.instrument_client(client, cache=True)
    try:
        assert client.get("k") is None
        assert sharing.get("k") is None  # same pool, same settings
    finally:
        instrumentor.uninstrument_client(client)
    assert client.get("k") == b"v"
    assert sharing.get("k") == b"v"


def test_reinstrumenting_moves_clients_in_use_to_the_new_registry(
    redis_server: RedisServer,
) -> None:
    client = _client(redis_server)
    first, second = BreakerRegistry(), BreakerRegistry()
    with installed(RedisBreakerInstrumentor(), registry=first) as install:
        install()
        client.set("k", "v")
    with installed(RedisBreakerInstrumentor(), registry=second) as install:
        install()
        client.get("k")
        client.get("k")
    name = redis_target(client)
    assert first.get(name).calls_by_outcome()[Outcome.SUCCESS] == 1
    assert second.get(name).calls_by_outcome()[Outcome.SUCCESS] == 2


def test_instrument_client_names_the_component(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    instrumentor = instrument()
    sessions = _client(redis_server, db=1)
    instrumentor.instrument_client(sessions, component="sessions")
    try:
        sessions.get("k")
        assert registry.get(redis_target(sessions)).component == "sessions"
    finally:
        instrumentor.uninstrument_client(sessions)


def test_features_are_ignored_unless_enforcement_is_on(
    instrument: Instrument, redis_server: RedisServer
) -> None:
    board = SnapshotBoard()
    instrument(board=board, cache=True)
    client = _client(redis_server)
    client.set("k", "v")
    _publish(board, Level.EMERGENCY)
    assert client.get("k") == b"v"


async def test_asyncio_cache_reads_miss(instrument: Instrument, redis_server: RedisServer) -> None:
    board = SnapshotBoard()
    instrument(enforce_features=True, board=board, cache=True)
    client = _async_client(redis_server)
    try:
        await client.set("k", "v")
        _publish(board, Level.LIMITED)
        assert await client.get("k") is None
        assert await client.set("k", "w") is None
        _publish(board, Level.OPTIMAL)
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()


def test_instrument_client_alone_guards_that_client_and_its_pipelines(
    registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    instrumentor = RedisBreakerInstrumentor()
    client = _client(redis_server)
    other = _client(redis_server, db=1)
    instrumentor.instrument_client(client, registry=registry, config=FAST)
    try:
        assert not is_wrapped(redis.Redis, "execute_command")
        client.set("k", "v")
        with client.pipeline() as pipe:
            pipe.get("k").execute()
        other.get("k")
        breaker = registry.get(redis_target(client))
        assert {stats.name for stats in breaker.operations()} >= {"SET", "MULTI"}
        assert redis_target(other) not in registry
    finally:
        instrumentor.uninstrument_client(client)
    assert {"execute_command", "pipeline", "_brownout_binding"}.isdisjoint(vars(client))
    client.get("k")
    assert breaker.calls_by_outcome()[Outcome.SUCCESS] == 2


class _AnsweringRedis(redis.Redis):
    """Answers every command itself, without a server, noting which file called it."""

    callers: ClassVar[list[str]] = []

    def _execute_command(self, *args: object, **options: object) -> object:
        self.callers.append(sys._getframe(1).f_code.co_filename)
        return f"answered {args[0]}"


class _PrefixingRedis(_AnsweringRedis):
    """Overrides execute_command itself, as some client subclasses do."""

    def execute_command(self, *args: object, **options: object) -> object:
        return f"prefixed {super().execute_command(*args, **options)}"


def test_client_subclasses_keep_their_overrides(registry: BreakerRegistry) -> None:
    # The replacement of Redis.execute_command calls _execute_command itself when the
    # method it replaces only forwards there; overrides on either level must still run.
    _AnsweringRedis.callers.clear()
    answering, prefixing = _AnsweringRedis(), _PrefixingRedis(db=1)
    with installed(RedisBreakerInstrumentor(), registry=registry) as install:
        install()
        assert answering.get("k") == "answered GET"
        assert prefixing.get("k") == "prefixed answered GET"
    # redis-py's forwarder (in redis/client.py) was left out of the calls: no extra frame.
    ours, forwarder = brownout.instrumentation.redis.__file__, redis.client.__file__
    assert _AnsweringRedis.callers == [ours, ours]
    assert answering.get("k") == "answered GET"  # uninstrumented: through the forwarder
    assert _AnsweringRedis.callers[-1] == forwarder
    assert registry.get(redis_target(answering)).calls_by_outcome()[Outcome.SUCCESS] == 1
    assert registry.get(redis_target(prefixing)).calls_by_outcome()[Outcome.SUCCESS] == 1

    alone = _PrefixingRedis(db=2)
    instrumentor = RedisBreakerInstrumentor()
    instrumentor.instrument_client(alone, registry=registry)
    try:
        assert alone.get("k") == "prefixed answered GET"
        assert registry.get(redis_target(alone)).calls_by_outcome()[Outcome.SUCCESS] == 1
    finally:
        instrumentor.uninstrument_client(alone)


def test_uninstrument_restores_the_original_methods(registry: BreakerRegistry) -> None:
    owners = (redis.Redis, redis.client.Pipeline, redis.asyncio.Redis)
    before = {owner: dict(vars(owner)) for owner in owners}
    instrumentor = RedisBreakerInstrumentor()
    instrumentor.instrument(registry=registry)
    assert is_wrapped(redis.client.Pipeline, "execute")
    instrumentor.uninstrument()
    for owner in owners:
        assert dict(vars(owner)) == before[owner]


def test_passwords_never_reach_breaker_names_or_metric_labels(
    instrument: Instrument, registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    setup = _client(redis_server)
    setup.config_set("requirepass", "s3cret-pw")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument(meter_provider=provider)
    client = redis.Redis.from_url(
        f"redis://:s3cret-pw@127.0.0.1:{redis_server.port}/0?password=s3cret-pw",
        retry=Retry(NoBackoff(), 0),
    )
    client.set("k", "v")
    assert all("s3cret" not in breaker.name for breaker in registry)
    labels = label_values(reader)
    assert labels
    assert any(redis_target(client) in label for label in labels)
    assert not any("s3cret" in label for label in labels)
    provider.shutdown()


def test_targets_name_unix_sockets_tls_and_ipv6() -> None:
    assert redis_target(redis.Redis(unix_socket_path="/run/redis.sock", db=2)) == (
        "redis+unix:///run/redis.sock/2"
    )
    assert redis_target(redis.Redis(host="cache.internal", ssl=True)) == (
        "rediss://cache.internal:6379/0"
    )
    assert redis_target(redis.Redis(host="::1", port=7000, db=1)) == "redis://[::1]:7000/1"
    assert redis_target(redis.Redis.from_url("redis://u:pw@h:1/4?x=pw")) == "redis://h:1/4"


async def test_instrument_client_guards_an_asyncio_client(
    registry: BreakerRegistry, redis_server: RedisServer
) -> None:
    instrumentor = RedisBreakerInstrumentor()
    client = _async_client(redis_server)
    instrumentor.instrument_client(client, registry=registry, config=FAST)
    try:
        await client.set("k", "v")
        async with client.pipeline() as pipe:
            assert await pipe.get("k").execute() == [b"v"]
        breaker = registry.get(redis_target(client))
        assert {stats.name for stats in breaker.operations()} >= {"SET", "MULTI"}
        assert breaker.calls_by_outcome()[Outcome.SUCCESS] == 2
    finally:
        instrumentor.uninstrument_client(client)
        await client.aclose()
    assert "execute_command" not in vars(client)
