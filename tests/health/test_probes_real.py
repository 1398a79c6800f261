"""The built-in probe factories against real servers, while they answer and after they die.

Redis is a private redis-server the tests kill and restart, SQLAlchemy talks to a SQLite
file, the machine's PostgreSQL and a closed port, S3 is moto in server mode, and OpenAI is
a local HTTP server. The last test runs a probe through an instrumented client's open
breaker from the recovery loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import boto3
import openai
import pytest
import redis
import redis.asyncio
from botocore.config import Config
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from brownout import BreakerRegistry, BreakerState
from brownout.breaker import BreakerConfig
from brownout.health import (
    Probe,
    RecoveryLoop,
    openai_models_list,
    redis_ping,
    s3_head_bucket,
    sqlalchemy_select_one,
)
from brownout.instrumentation.redis import (
    RedisBreakerInstrumentor,
    RedisCircuitOpenError,
    redis_target,
)
from brownout.testing import FakeClock, FixedRandom
from tests.health.conftest import Build
from tests.servers import RedisServer, eventually, free_port, port_open


async def answers(probe: Probe) -> bool:
    """Run ``probe`` the way the recovery loop judges it: raising or ``False`` is down."""
    try:
        result = probe.check()
        if probe.is_async:
            result = await result
    except Exception:
        return False
    return result is not False


async def until_answers(probe: Probe, timeout: float = 10.0) -> None:
    """Poll ``probe`` until it answers: a restarted server may take a moment to listen."""
    deadline = time.monotonic() + timeout
    while not await answers(probe):
        if time.monotonic() > deadline:
            raise AssertionError(f"{probe.name} did not answer within {timeout}s")
        await asyncio.sleep(0.02)


# -- redis -------------------------------------------------------------------------------


def sync_redis(server: RedisServer) -> redis.Redis:
    # One attempt per call, so a dead server fails the probe at once.
    return redis.Redis(
        host="127.0.0.1",
        port=server.port,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=2,
        socket_connect_timeout=2,
    )


async def test_redis_ping_follows_the_server_with_a_sync_client(
    redis_server: RedisServer,
) -> None:
    client = sync_redis(redis_server)
    try:
        probe = redis_ping(client)
        assert (probe.kind, probe.component, probe.is_async) == ("redis", "cache", False)
        assert await answers(probe)

        redis_server.kill()
        assert not await answers(probe)
        with pytest.raises(redis.exceptions.ConnectionError):
            probe.check()

        redis_server.start()
        await until_answers(probe)
    finally:
        client.close()


async def test_redis_ping_follows_the_server_with_an_asyncio_client(
    redis_server: RedisServer,
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url, retry=None, socket_timeout=2)
    try:
        probe = redis_ping(client)
        assert probe.is_async
        assert await answers(probe)

        redis_server.kill()
        assert not await answers(probe)

        redis_server.start()
        await until_answers(probe)
    finally:
        await client.aclose()


# -- SQLAlchemy --------------------------------------------------------------------------

CLOSED_PORT_TIMEOUT = {"connect_timeout": 2}


async def test_select_one_on_a_sqlite_file(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'probe.db'}")
    try:
        probe = sqlalchemy_select_one(engine)
        assert (probe.kind, probe.component, probe.is_async) == ("sqlalchemy", "database", False)
        assert await answers(probe)
        assert probe.check() is True
    finally:
        engine.dispose()


async def test_select_one_fails_on_a_closed_port() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    engine = create_engine(url, connect_args=CLOSED_PORT_TIMEOUT)
    try:
        probe = sqlalchemy_select_one(engine)
        assert not await answers(probe)
    finally:
        engine.dispose()


async def test_select_one_on_postgres(postgres_url: str) -> None:
    engine = create_engine(postgres_url, connect_args=CLOSED_PORT_TIMEOUT)
    try:
        assert await answers(sqlalchemy_select_one(engine))
    finally:
        engine.dispose()


async def test_select_one_on_an_async_engine(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url, connect_args=CLOSED_PORT_TIMEOUT)
    closed = create_async_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test",
        connect_args=CLOSED_PORT_TIMEOUT,
    )
    try:
        probe = sqlalchemy_select_one(engine)
        assert probe.is_async
        assert await answers(probe)
        assert not await answers(sqlalchemy_select_one(closed))
    finally:
        await engine.dispose()
        await closed.dispose()


# -- S3 ----------------------------------------------------------------------------------


class Moto:
    """moto in server mode on a free port, which a test may stop."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer  # moto is slow to import: only when used

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.running = False

    def start(self) -> None:
        self.server.start()
        self.running = True
        eventually(lambda: port_open("127.0.0.1", self.port, 0.2))

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.server.stop()


@pytest.fixture
def moto() -> Iterator[Moto]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = Moto()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def s3_client(port: int) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}),
    )


async def test_head_bucket_follows_moto(moto: Moto) -> None:
    client = s3_client(moto.port)
    bucket = f"brownout-probe-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    try:
        probe = s3_head_bucket(client, bucket)
        assert (probe.kind, probe.component, probe.is_async) == ("s3", "s3", False)
        assert await answers(probe)

        missing = s3_head_bucket(client, f"brownout-missing-{uuid.uuid4().hex[:12]}")
        with pytest.raises(client.exceptions.ClientError) as not_found:
            missing.check()
        assert not_found.value.response["Error"]["Code"] == "404"
        assert not await answers(missing)

        moto.stop()
        assert not await answers(probe)
    finally:
        if moto.running:
            client.delete_bucket(Bucket=bucket)
        client.close()


# -- OpenAI ------------------------------------------------------------------------------


class ModelsHandler(BaseHTTPRequestHandler):
    """``GET /v1/models`` answering ``status``; HTTP/1.0, so no connection outlives a
    request and a shut-down server refuses the next one."""

    status: ClassVar[int] = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        if self.path != "/v1/models":
            self._reply(404, {"error": {"message": "not found"}})
        elif self.status == 200:
            self._reply(200, {"object": "list", "data": []})
        else:
            self._reply(self.status, {"error": {"message": "unavailable"}})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on the paths instead."""


class ModelsServer:
    def __init__(self) -> None:
        # A subclass per server, so status and paths are its own.
        self.handler: type[ModelsHandler] = type(
            "Handler", (ModelsHandler,), {"status": 200, "paths": []}
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def answer(self, status: int) -> None:
        self.handler.status = status

    @property
    def paths(self) -> list[str]:
        return list(self.handler.paths)

    def shut_down(self) -> None:
        if self.running:
            self.running = False
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)


@pytest.fixture
def models_server() -> Iterator[ModelsServer]:
    server = ModelsServer()
    try:
        yield server
    finally:
        server.shut_down()


async def test_models_list_follows_the_server_with_a_sync_client(
    models_server: ModelsServer,
) -> None:
    client = openai.OpenAI(
        api_key="sk-test", base_url=models_server.base_url, max_retries=0, timeout=2
    )
    try:
        probe = openai_models_list(client)
        assert (probe.kind, probe.component, probe.is_async) == ("openai", "openai", False)
        assert await answers(probe)
        assert models_server.paths == ["/v1/models"]

        models_server.answer(503)
        with pytest.raises(openai.InternalServerError):
            probe.check()
        assert not await answers(probe)

        models_server.answer(200)
        assert await answers(probe)

        models_server.shut_down()
        with pytest.raises(openai.APIConnectionError):
            probe.check()
    finally:
        client.close()


async def test_models_list_follows_the_server_with_an_async_client(
    models_server: ModelsServer,
) -> None:
    client = openai.AsyncOpenAI(
        api_key="sk-test", base_url=models_server.base_url, max_retries=0, timeout=2
    )
    try:
        probe = openai_models_list(client)
        assert probe.is_async
        assert await answers(probe)
        assert models_server.paths == ["/v1/models"]

        models_server.answer(503)
        assert not await answers(probe)

        models_server.shut_down()
        with pytest.raises(openai.APIConnectionError):
            await probe.check()
    finally:
        await client.close()


# -- through the recovery loop -----------------------------------------------------------

# Opens after 3 failures and, on the fake clock, stays open until something half-opens it.
TRIP_FAST = BreakerConfig(consecutive_failures=3, open_seconds=60, jitter=0, half_open_permits=2)


@pytest.fixture
def instrumented_redis(
    redis_server: RedisServer, registry: BreakerRegistry
) -> Iterator[redis.Redis]:
    client = sync_redis(redis_server)
    instrumentor = RedisBreakerInstrumentor()
    instrumentor.instrument_client(client, registry=registry, config=TRIP_FAST)
    try:
        yield client
    finally:
        instrumentor.uninstrument_client(client)
        client.close()


async def test_recovery_probe_runs_through_the_open_breaker_of_an_instrumented_client(
    build: Build,
    clock: FakeClock,
    registry: BreakerRegistry,
    redis_server: RedisServer,
    instrumented_redis: redis.Redis,
) -> None:
    client = instrumented_redis
    aggregator, _ = build(())
    probe = redis_ping(client, breakers=(redis_target(client),))
    loop = RecoveryLoop(aggregator, [probe], random_source=FixedRandom())
    client.set("k", "v")
    breaker = registry.get(redis_target(client))
    assert breaker.component == "cache"

    redis_server.kill()
    for _ in range(TRIP_FAST.consecutive_failures):
        with pytest.raises(redis.exceptions.ConnectionError):
            client.get("k")
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(RedisCircuitOpenError):
        client.get("k")

    await loop.step()  # the component is down: its first probe is scheduled
    due = loop.next_probe_at("cache")
    assert due is not None
    clock.advance(due - clock())
    await loop.step()
    # The probe got past the open breaker to the dead server, and did not re-open it.
    failed = loop.attempts[-1]
    assert (failed.ok, failed.error) == (False, "ConnectionError")
    assert breaker.state is BreakerState.OPEN

    redis_server.start()
    due = loop.next_probe_at("cache")
    assert due is not None
    clock.advance(due - clock())
    await loop.step()
    assert loop.attempts[-1].ok
    assert loop.next_probe_at("cache") is None
    # The probe's PING went through the breaker, which only half-opened: the open period
    # (60 s on a clock that moved 30 s) was ended by the probe, not by time.
    assert "PING" in {stats.name for stats in breaker.operations()}
    assert breaker.state is BreakerState.HALF_OPEN

    for _ in range(TRIP_FAST.half_open_permits):
        assert client.get("k") is None  # redis restarted empty
    assert breaker.state is BreakerState.CLOSED
    assert client.set("k", "again")
