from __future__ import annotations

from collections.abc import Iterator

import pytest

from brownout.testing import FakeClock, FixedRandom
from tests.servers import RedisServer, missing, port_open, redis_binary


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def no_jitter() -> FixedRandom:
    return FixedRandom(0.5)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server, started; the test may kill() and start() it."""
    binary = redis_binary()
    if binary is None:
        missing("redis-server is not installed")
    assert binary is not None
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url() -> str:
    """The machine's PostgreSQL (trust auth, database ``test``)."""
    if not port_open("127.0.0.1", 5432):
        missing("PostgreSQL is not listening on 127.0.0.1:5432")
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"
