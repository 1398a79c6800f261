"""Redis Cluster clients (sync and asyncio) against a private one-node cluster."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster

from brownout.breaker import BreakerConfig, BreakerRegistry, BreakerState, Outcome
from brownout.instrumentation.redis import (
    RedisBreakerInstrumentor,
    RedisCircuitOpenError,
    redis_target,
)
from tests.servers import free_port, missing, port_open, redis_binary, wait_for_port


def _cluster_port() -> int:
    # A cluster node also listens on its port + 10000 (the cluster bus): both must be free,
    # and the bus port must exist.
    while True:
        port = free_port()
        if port + 10_000 <= 65_535 and not port_open("127.0.0.1", port + 10_000):
            return port


class OneNodeCluster:
    """A redis-server in cluster mode owning every slot: a real cluster of one."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = _cluster_port()
        self.dir = tempfile.mkdtemp(prefix="brownout-cluster-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--cluster-enabled", "yes",
             "--cluster-config-file", "nodes.conf"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port("127.0.0.1", self.port)
        except TimeoutError:
            self.kill()
            raise
        admin = redis.Redis(port=self.port)
        if not admin.execute_command("CLUSTER", "SLOTS"):
            admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in admin.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise TimeoutError("the one-node cluster did not come up")
            time.sleep(0.05)
        admin.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[OneNodeCluster]:
    binary = redis_binary()
    if binary is None:
        missing("redis-server is not installed")
    assert binary is not None
    server = OneNodeCluster(binary)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def registry() -> Iterator[BreakerRegistry]:
    registry = BreakerRegistry()
    instrumentor = RedisBreakerInstrumentor()
    config = BreakerConfig(consecutive_failures=1, open_seconds=30, jitter=0.0)
    instrumentor.instrument(registry=registry, config=config)
    yield registry
    instrumentor.uninstrument()


def test_cluster_client_has_one_breaker_named_by_its_startup_nodes(
    registry: BreakerRegistry, cluster: OneNodeCluster
) -> None:
    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.port)
    try:
        client.set("k", "v")
        assert client.get("k") == b"v"
        with client.pipeline() as pipe:
            assert pipe.get("k").execute() == [b"v"]
        name = redis_target(client)
        assert name == f"redis+cluster://127.0.0.1:{cluster.port}"
        breaker = registry.get(name)
        names = {stats.name for stats in breaker.operations()}
        assert {"SET", "GET", "PIPELINE"} <= names, names

        cluster.kill()
        # After its own retries the cluster client gives up with RedisClusterException.
        with pytest.raises(redis.exceptions.RedisClusterException):
            client.get("k")
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(redis.exceptions.ConnectionError) as rejected:
            client.get("k")
        assert isinstance(rejected.value, RedisCircuitOpenError)
        assert breaker.calls_by_outcome()[Outcome.REJECTED] == 1
    finally:
        client.close()


async def test_asyncio_cluster_client_goes_through_its_breaker(
    registry: BreakerRegistry, cluster: OneNodeCluster
) -> None:
    client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=cluster.port)
    try:
        await client.set("k", "v")
        async with client.pipeline() as pipe:
            assert await pipe.get("k").execute() == [b"v"]
        breaker = registry.get(redis_target(client))
        names = {stats.name for stats in breaker.operations()}
        assert {"SET", "PIPELINE"} <= names
        assert breaker.calls_by_outcome()[Outcome.SUCCESS] == 2
    finally:
        await client.aclose()
