"""The demo's in-process redis stand-in, through real redis-py clients (RESP3, as redis-py 8
negotiates by default, and RESP2), a breaker and the retail example's cache-aside."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

from brownout.breaker import BreakerConfig, BreakerRegistry, BreakerState
from brownout.instrumentation.redis import (
    RedisBreakerInstrumentor,
    RedisCircuitOpenError,
    redis_target,
)
from examples.demo.redis_standin import RedisStandIn
from examples.retail.cache import CacheAside
from tests.servers import eventually, eventually_async

FAST = BreakerConfig(
    consecutive_failures=2, open_seconds=0.2, open_max_seconds=0.2, jitter=0.0,
    half_open_permits=1,
)  # fmt: skip


@pytest.fixture
def standin() -> Iterator[RedisStandIn]:
    server = RedisStandIn()
    server.start()
    yield server
    server.close()


def _client(server: RedisStandIn, protocol: int = 3) -> redis.Redis:
    # retry=None: one attempt per call, so a dead server shows on the very next call.
    return redis.Redis.from_url(server.url, protocol=protocol, retry=None, socket_timeout=2)


@pytest.mark.parametrize("protocol", [3, 2])
def test_strings_counters_and_keys(standin: RedisStandIn, protocol: int) -> None:
    client = _client(standin, protocol)
    assert client.ping() is True
    assert client.set("a", "1") is True
    assert client.set("a", "2", nx=True) is None
    assert client.set("absent", "x", xx=True) is None
    assert client.set("a", "3", xx=True) is True
    assert client.get("a") == b"3"
    assert client.mget("a", "missing") == [b"3", None]
    assert client.incr("n") == 1
    assert client.incr("n", 5) == 6
    assert client.get("n") == b"6"
    assert client.exists("a", "n", "missing") == 2
    assert client.delete("a", "missing") == 1
    assert client.unlink("n") == 1
    assert client.get("a") is None
    client.set("text", "abc")
    with pytest.raises(redis.exceptions.ResponseError, match="not an integer"):
        client.incr("text")
    client.flushdb()
    assert client.exists("text") == 0
    client.close()


def test_unknown_commands_and_wrong_arity_answer_errors(standin: RedisStandIn) -> None:
    client = _client(standin)
    with pytest.raises(redis.exceptions.ResponseError, match="unknown command 'zadd'"):
        client.zadd("z", {"m": 1})
    with pytest.raises(redis.exceptions.ResponseError, match="wrong number of arguments"):
        client.execute_command("GET")
    assert client.ping() is True  # the connection survives an error reply
    client.close()


def test_keys_expire(standin: RedisStandIn) -> None:
    client = _client(standin)
    client.set("forever", "x")
    assert client.ttl("forever") == -1
    assert client.ttl("missing") == -2
    client.set("minute", "x", ex=60)
    assert 59 <= client.ttl("minute") <= 60
    client.execute_command("SETEX", "setex", 60, "x")  # redis-py deprecates setex()
    assert 59 <= client.ttl("setex") <= 60
    assert client.expire("forever", 60) is True
    assert 59 <= client.ttl("forever") <= 60
    assert client.expire("missing", 60) is False
    client.set("short", "x", px=50)
    client.set("also-short", "x")
    client.expire("also-short", 1)
    eventually(lambda: client.get("short") is None and client.get("also-short") is None)
    assert client.exists("short", "also-short") == 0
    assert client.ttl("short") == -2
    client.close()


def test_databases_are_separate(standin: RedisStandIn) -> None:
    zero, one = _client(standin), redis.Redis(port=standin.port, db=1, retry=None)
    zero.set("k", "zero")
    assert one.get("k") is None
    one.set("k", "one")
    assert zero.get("k") == b"zero"
    zero.close()
    one.close()


def test_kill_drops_every_connection_and_start_listens_on_the_same_port(
    standin: RedisStandIn,
) -> None:
    first, second = _client(standin), _client(standin)
    first.set("k", "v")
    assert second.get("k") == b"v"
    port = standin.port
    standin.kill()
    assert not standin.running
    # Both held an open connection: each sees it cut, then no server to reconnect to.
    for client in (first, second):
        with pytest.raises(redis.exceptions.ConnectionError):
            client.get("k")
    with pytest.raises(redis.exceptions.ConnectionError):
        first.get("k")

    standin.start()
    assert standin.running
    assert standin.port == port
    assert first.get("k") is None  # a crashed redis without persistence comes back empty
    assert first.set("k", "again") is True
    assert second.get("k") == b"again"
    first.close()
    second.close()


async def test_asyncio_client_through_a_kill_and_a_restart(standin: RedisStandIn) -> None:
    client = redis.asyncio.Redis.from_url(standin.url, retry=None, socket_timeout=2)
    try:
        assert await client.set("k", "v", ex=60) is True
        assert await client.get("k") == b"v"
        assert await client.mget("k", "missing") == [b"v", None]
        standin.kill()
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.get("k")
        standin.start()

        async def answers() -> bool:
            try:
                return await client.set("k", "back") is True
            except redis.exceptions.ConnectionError:
                return False  # the pool may hand back the connection the kill cut

        await eventually_async(answers)
        assert await client.get("k") == b"back"
    finally:
        await client.aclose()


def test_the_retail_cache_falls_through_while_the_breaker_is_open(
    standin: RedisStandIn,
) -> None:
    registry = BreakerRegistry()
    client = _client(standin)
    instrumentor = RedisBreakerInstrumentor()
    instrumentor.instrument_client(client, cache=True, registry=registry, config=FAST)
    cache = CacheAside(client, ttl_seconds=60)
    loads = 0

    def load() -> dict[str, int]:
        nonlocal loads
        loads += 1
        return {"loads": loads}

    try:
        assert cache.fetch("item:1", load, None) == ({"loads": 1}, "database")
        assert cache.fetch("item:1", load, None) == ({"loads": 1}, "cache")
        breaker = registry.get(redis_target(client))

        standin.kill()
        for expected in (2, 3):
            value, source = cache.fetch("item:1", load, None)
            assert (value, source) == ({"loads": expected}, "database (cache unavailable)")
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(RedisCircuitOpenError):
            client.get("item:1")

        standin.start()

        def cached_again() -> bool:
            return cache.fetch("item:1", load, None)[1] == "cache"

        eventually(cached_again)
        assert breaker.state is BreakerState.CLOSED
    finally:
        instrumentor.uninstrument_client(client)
        client.close()
