"""/livez, /readyz, /health and /metrics; lifespan starts and stops the health control."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.types import Message

from brownout.breaker import BreakerState
from brownout.health.snapshot import BreakerStatus, ComponentHealth, ComponentState, SnapshotBoard
from brownout.levels import Level
from brownout.middleware import BrownoutMiddleware, MiddlewareSettings
from tests.middleware.conftest import ADMIN_KEY, FakeControl, client, lifespan, publish


def make_app(
    board: SnapshotBoard, control: FakeControl | None = None, **settings: Any
) -> Starlette:
    app = Starlette(routes=[])
    app.add_middleware(
        BrownoutMiddleware, board=board, control=control, settings=MiddlewareSettings(**settings)
    )
    return app


async def test_livez_is_200_at_every_level(board: SnapshotBoard) -> None:
    app = make_app(board)
    async with client(app) as http:
        for level in Level:
            publish(board, level)
            response = await http.get("/livez")
            assert response.status_code == 200
            assert (await http.head("/livez")).status_code == 200


async def test_readyz_follows_the_lifespan(board: SnapshotBoard, control: FakeControl) -> None:
    app = make_app(board, control)
    async with client(app) as http:
        assert (await http.get("/readyz")).status_code == 503
        async with lifespan(app) as sent:
            assert sent[-1]["type"] == "lifespan.startup.complete"
            assert control.started == 1
            assert (await http.get("/readyz")).status_code == 200
            publish(board, Level.EMERGENCY)  # not tied to dependency health by default
            assert (await http.get("/readyz")).status_code == 200
        assert control.stopped == 1
        assert (await http.get("/readyz")).status_code == 503


async def test_readyz_is_503_while_shutting_down(board: SnapshotBoard) -> None:
    draining = asyncio.Event()
    finish = asyncio.Event()

    @asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        draining.set()
        await finish.wait()

    app = Starlette(routes=[], lifespan=app_lifespan)
    app.add_middleware(BrownoutMiddleware, board=board)
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []
    started = asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)
        started.set()

    task = asyncio.create_task(app({"type": "lifespan", "state": {}}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    async with client(app) as http:
        await asyncio.wait_for(started.wait(), 10)
        assert (await http.get("/readyz")).status_code == 200
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(draining.wait(), 10)
        response = await http.get("/readyz")
        assert response.status_code == 503
        assert (await http.get("/livez")).status_code == 200
        finish.set()
        await asyncio.wait_for(task, 10)
    assert sent[-1]["type"] == "lifespan.shutdown.complete"


async def test_readyz_can_be_unready_at_emergency(board: SnapshotBoard) -> None:
    app = make_app(board, unready_at_emergency=True)
    async with lifespan(app), client(app) as http:
        publish(board, Level.MINIMAL)
        assert (await http.get("/readyz")).status_code == 200
        publish(board, Level.EMERGENCY)
        assert (await http.get("/readyz")).status_code == 503


async def test_failing_control_start_fails_startup(
    board: SnapshotBoard, control: FakeControl
) -> None:
    async def broken() -> None:
        raise RuntimeError("aggregator could not start")

    control.start = broken  # type: ignore[method-assign]
    app = make_app(board, control)
    async with lifespan(app) as sent:
        assert sent[-1] == {
            "type": "lifespan.startup.failed",
            "message": "brownout: aggregator could not start",
        }
    async with client(app) as http:
        assert (await http.get("/readyz")).status_code == 503


@pytest.mark.parametrize(
    ("level", "status", "http_status"),
    [
        (Level.OPTIMAL, "pass", 200),
        (Level.DEGRADED, "warn", 200),
        (Level.LIMITED, "warn", 200),
        (Level.MINIMAL, "warn", 200),
        (Level.EMERGENCY, "fail", 503),
    ],
)
async def test_health_reports_pass_warn_fail(
    board: SnapshotBoard, level: Level, status: str, http_status: int
) -> None:
    app = make_app(board, admin_api_key=ADMIN_KEY)
    component = ComponentHealth(
        "cache", 12.5, ComponentState.CRITICAL,
        (BreakerStatus("cache 10.1.2.3:6379/0", BreakerState.OPEN, 8.0),),
    )  # fmt: skip
    publish(board, level, score=42.0, components={"cache": component}, reason="cache down")
    async with client(app) as http:
        public = await http.get("/health")
        private = await http.get("/health", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    for response in (public, private):
        assert response.status_code == http_status
        assert response.headers["content-type"] == "application/health+json"
        assert response.json()["status"] == status
    assert "checks" not in public.json()
    assert "cache" not in public.text
    checks = private.json()["checks"]
    assert checks["brownout:level"][0]["observedValue"] == level.label
    assert checks["cache:score"][0] == {
        "componentId": "cache", "componentType": "component", "observedValue": 12.5,
        "observedUnit": "percent", "status": "fail", "output": "critical",
    }  # fmt: skip
    assert checks["cache:breakers"][0]["observedValue"] == "open"
    assert private.json()["notes"] == ["cache down"]


async def test_probes_move_with_the_prefix_and_metrics_are_optional(board: SnapshotBoard) -> None:
    registry = CollectorRegistry()
    Counter("demo_requests", "demo", registry=registry).inc(3)
    app = Starlette(routes=[])
    app.add_middleware(
        BrownoutMiddleware,
        board=board,
        settings=MiddlewareSettings(prefix="/ops", metrics_path="/metrics"),
        metrics_text=lambda: generate_latest(registry),
    )
    publish(board, Level.EMERGENCY)
    async with client(app) as http:
        assert (await http.get("/ops/livez")).status_code == 200
        metrics = await http.get("/ops/metrics")
        assert metrics.status_code == 200
        assert "demo_requests_total 3.0" in metrics.text
        assert (await http.get("/livez")).status_code == 503  # an ordinary GET now
        assert (await http.post("/ops/livez")).status_code == 405
