"""The whole chain in one process: a real breaker trips, the health service moves the
level, and the middleware rejects, degrades and serves accordingly."""

from __future__ import annotations

import contextlib
import json

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from brownout import BreakerConfig, BreakerRegistry, CircuitOpenError, Level
from brownout.health import HealthService, SnapshotBoard
from brownout.middleware import BrownoutMiddleware, features
from brownout.settings import BrownoutSettings
from brownout.testing import FakeClock, FixedRandom

ADMIN_KEY = "integration-key-0123456789"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry(clock: FakeClock) -> BreakerRegistry:
    config = BreakerConfig(consecutive_failures=3, open_seconds=10, jitter=0)
    return BreakerRegistry(default_config=config, clock=clock, random_source=FixedRandom())


def build_app(registry: BreakerRegistry, clock: FakeClock) -> tuple[Starlette, HealthService]:
    database = registry.breaker("postgresql://db:5432/shop", component="database")
    cache = registry.breaker("redis://cache:6379/0", component="cache")
    # The rest of a full service: the weights renormalise over the components it has.
    registry.breaker("openai https://api.example/v1/", component="openai")
    registry.breaker("s3 https://s3.example us-east-1", component="s3")
    registry.breaker("payments", component="external")

    @database
    def insert_order() -> int:
        raise ConnectionError("connection refused")  # the database is down in these tests

    @features(requires=["write"], components=["database"])
    async def create_order(request: Request) -> JSONResponse:
        return JSONResponse({"id": insert_order()}, status_code=201)

    @features(requires=["read"], optional=["cache_read", "ai"])
    async def list_products(request: Request) -> JSONResponse:
        state = request.state.brownout
        return JSONResponse({"cached": state.enabled("cache_read"), "off": sorted(state.off)})

    @features(requires=["read"])
    async def product(request: Request) -> JSONResponse:
        with cache:
            raise ConnectionError("cache refused")

    app = Starlette(
        routes=[
            Route("/orders", create_order, methods=["POST"]),
            Route("/products", list_products),
            Route("/products/{id}", product),
        ]
    )
    settings = BrownoutSettings.load(
        health={"dwell_seconds": 30, "smoothing_seconds": 0},
        middleware={"admin_api_key": ADMIN_KEY, "retry_jitter": 0},
    )
    health = HealthService(
        settings,
        registry=registry,
        board=SnapshotBoard(),
        meter_provider=MeterProvider(),
        clock=clock,
    )
    # add_middleware puts brownout inside Starlette's error middleware, so an open circuit
    # escaping a handler reaches brownout before anything answers 500.
    app.add_middleware(BrownoutMiddleware, settings=settings.middleware, control=health,
                       registry=registry, clock=clock)  # fmt: skip
    return app, health


def test_database_outage_rejects_writes_and_degrades_reads(
    registry: BreakerRegistry, clock: FakeClock
) -> None:
    app, health = build_app(registry, clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/products").json() == {"cached": True, "off": []}
        # Three writes hit the dead database: the handler's errors trip its breaker.
        for _ in range(3):
            with contextlib.suppress(ConnectionError):
                client.post("/orders")
        assert registry.get("postgresql://db:5432/shop").state.value == "open"
        clock.advance(2)
        snapshot = health.aggregator.evaluate()
        assert snapshot.level is Level.LIMITED

        rejected = client.post("/orders")
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "8"  # the breaker half-opens in 8 s
        assert rejected.headers["brownout-level"] == "limited"
        assert rejected.headers["cache-control"] == "no-store"
        assert rejected.headers["content-type"] == "application/problem+json"
        problem = rejected.json()
        assert problem["status"] == 503
        assert "5432" not in json.dumps(problem)  # no DSN, host or port leaks

        degraded = client.get("/products")
        assert degraded.status_code == 200
        assert degraded.headers["brownout-degraded"] == "ai,cache_read"
        assert degraded.json() == {"cached": False, "off": ["ai", "cache_read", "cache_write"]}

        status = client.get("/brownout/admin/status", headers={"X-API-Key": ADMIN_KEY})
        assert status.status_code == 200
        assert status.json()["control"]["level"] == "limited"


def test_circuit_open_error_escaping_a_handler_is_a_503(
    registry: BreakerRegistry, clock: FakeClock
) -> None:
    app, _ = build_app(registry, clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(3):
            client.get("/products/1")
        assert isinstance(registry.get("redis://cache:6379/0").last_failure, ConnectionError)
        response = client.get("/products/1")  # the breaker rejects inside the handler
        assert response.status_code == 503
        assert response.headers["retry-after"] == "10"
        assert "redis://" not in response.text
    with pytest.raises(CircuitOpenError):
        registry.get("redis://cache:6379/0").acquire()


def test_admin_override_pins_a_level_until_it_expires(
    registry: BreakerRegistry, clock: FakeClock
) -> None:
    app, health = build_app(registry, clock)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(app) as client:
        body = {"level": "minimal", "ttl": 60, "reason": "db migration"}
        forced = client.post("/brownout/admin/level", headers=headers, json=body)
        assert forced.status_code == 200, forced.text
        assert client.post("/orders").status_code == 503
        assert client.get("/products").status_code == 200
        clock.advance(61)
        health.aggregator.evaluate()
        assert health.snapshot.level is Level.OPTIMAL
        wrong = client.post("/brownout/admin/level", headers={"X-API-Key": "nope"},
                            json={"level": "emergency"})  # fmt: skip
        assert wrong.status_code == 401
        assert health.snapshot.level is Level.OPTIMAL
