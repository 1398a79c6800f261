"""Fixtures shared by the client instrumentation tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from brownout import BreakerRegistry
from brownout.testing import FakeClock, FixedRandom
from tests.instrumentation.faultproxy import FaultProxy

ProxyFactory = Callable[[str, int], FaultProxy]


@pytest.fixture
def fault_proxy() -> Iterator[ProxyFactory]:
    """``fault_proxy(host, port)`` starts a :class:`FaultProxy` in front of a server;
    every proxy started is closed at teardown."""
    proxies: list[FaultProxy] = []

    def start(host: str, port: int) -> FaultProxy:
        proxy = FaultProxy(host, port).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def registry(clock: FakeClock) -> BreakerRegistry:
    """Breakers on the fake clock, without jitter; modules may define their own."""
    return BreakerRegistry(clock=clock, random_source=FixedRandom(0.5))
