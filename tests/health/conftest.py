from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from brownout import Breaker, BreakerRegistry, BreakerState, CircuitOpenError
from brownout.health import SnapshotBoard
from brownout.health.aggregator import HealthAggregator
from brownout.settings import HealthSettings
from brownout.testing import FakeClock, FixedRandom

ALL = ("database", "cache", "openai", "s3", "external")


class Dependency:
    """A fake dependency behind a real breaker: calls succeed or fail as it is told."""

    def __init__(self, breaker: Breaker, clock: FakeClock) -> None:
        self.breaker = breaker
        self.clock = clock
        self.up = True
        self.call = breaker(self._call)

    def _call(self) -> str:
        self.clock.advance(0.001)
        if not self.up:
            raise ConnectionError(f"{self.breaker.name} refused the connection")
        return "ok"

    def die(self) -> None:
        """Stop answering and call it until its breaker opens."""
        self.up = False
        for _ in range(self.breaker.config.consecutive_failures):
            with contextlib.suppress(ConnectionError, CircuitOpenError):
                self.call()
        assert self.breaker.state is BreakerState.OPEN

    def heal(self) -> None:
        """Answer again; wait out the open period and let half-open probes close it."""
        self.up = True
        retry = self.breaker.retry_after()
        assert retry is not None
        self.clock.advance(retry)
        for _ in range(self.breaker.config.half_open_permits):
            self.call()
        assert self.breaker.state is BreakerState.CLOSED


@pytest.fixture
def registry(clock: FakeClock) -> BreakerRegistry:
    return BreakerRegistry(clock=clock, random_source=FixedRandom())


@pytest.fixture
def provider() -> Iterator[MeterProvider]:
    provider = MeterProvider()
    yield provider
    provider.shutdown()


Build = Callable[..., tuple[HealthAggregator, dict[str, Dependency]]]


@pytest.fixture
def build(clock: FakeClock, registry: BreakerRegistry, provider: MeterProvider) -> Iterator[Build]:
    made: list[HealthAggregator] = []

    def make(
        components: tuple[str, ...] = ALL, **settings: Any
    ) -> tuple[HealthAggregator, dict[str, Dependency]]:
        deps = {
            name: Dependency(registry.breaker(f"{name}-1", component=name), clock)
            for name in components
        }
        aggregator = HealthAggregator(
            HealthSettings(**settings),
            registry=registry,
            board=SnapshotBoard(),
            meter_provider=provider,
            clock=clock,
        )
        made.append(aggregator)
        return aggregator, deps

    yield make
    for aggregator in made:
        aggregator.close()
