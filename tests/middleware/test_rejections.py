"""Rejections: dependency down, circuits escaping handlers, batch capacity, custom
responses, startup errors, and the decision counter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from brownout.breaker import BreakerConfig, BreakerRegistry, BreakerState, CircuitOpenError
from brownout.health.snapshot import BreakerStatus, ComponentHealth, ComponentState, SnapshotBoard
from brownout.levels import Level
from brownout.middleware import (
    BrownoutMiddleware,
    MiddlewareSettings,
    PathPolicy,
    Rejection,
    RoutePolicyError,
    features,
)
from brownout.testing import FakeClock, FixedRandom
from tests.middleware.conftest import client, lifespan, publish

DSN_BREAKER = "postgresql://app:hunter2@db.internal:5432/app"


def database(*states: tuple[BreakerState, float | None], predicted: float | None = None) -> Any:
    return ComponentHealth(
        "database",
        0.0,
        ComponentState.CRITICAL,
        tuple(
            BreakerStatus(f"db-{index}", state, retry)
            for index, (state, retry) in enumerate(states)
        ),
        predicted,
    )


def fresh() -> Any:
    """A new endpoint each time: declarations tag the function itself."""

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return ok


def app_with(board: SnapshotBoard, *routes: Route, **options: Any) -> Starlette:
    app = Starlette(routes=list(routes))
    app.add_middleware(BrownoutMiddleware, board=board, **options)
    return app


@pytest.mark.parametrize("jitter", [0.0, 0.5])
async def test_retry_after_follows_the_breaker_when_a_required_component_is_down(
    board: SnapshotBoard, jitter: float
) -> None:
    app = app_with(
        board,
        Route("/orders", fresh(), methods=["POST"]),
        Route("/search", features(requires=["read"], components=["database"])(fresh())),
        Route("/cached", fresh()),
        random_source=FixedRandom(jitter),
    )
    down = database((BreakerState.OPEN, 41.2), (BreakerState.OPEN, 75.0), predicted=300.0)
    publish(board, Level.DEGRADED, components={"database": down}, retry_after=30.0)
    async with client(app) as http:
        # write implies the database (settings.feature_components), and /search names it.
        for response in (await http.post("/orders"), await http.get("/search")):
            assert response.status_code == 503
            expected = int(-(-41.2 * (1 + 0.2 * jitter) // 1))
            assert response.headers["retry-after"] == str(expected)
            body = response.json()
            assert body["type"] == "urn:brownout:problem:dependency-down"
            assert body["component"] == "database"
            assert "db-0" not in response.text
        # A read route that does not need the database is still served.
        assert (await http.get("/cached")).status_code == 200


async def test_component_with_a_breaker_still_closed_is_not_down(board: SnapshotBoard) -> None:
    app = app_with(board, Route("/orders", fresh(), methods=["POST"]))
    half = database((BreakerState.OPEN, 10.0), (BreakerState.CLOSED, 0.0))
    publish(board, Level.DEGRADED, components={"database": half})
    async with client(app) as http:
        assert (await http.post("/orders")).status_code == 200


async def test_forced_open_component_uses_predicted_recovery(board: SnapshotBoard) -> None:
    app = app_with(board, Route("/orders", fresh(), methods=["POST"]), random_source=FixedRandom(0))
    down = database((BreakerState.FORCED_OPEN, None), predicted=120.0)
    publish(board, Level.LIMITED, components={"database": down})
    async with client(app) as http:
        response = await http.post("/orders")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "120"


async def test_circuit_open_error_escaping_a_handler_becomes_503(
    board: SnapshotBoard, clock: FakeClock
) -> None:
    registry = BreakerRegistry(clock=clock, random_source=FixedRandom(0.5))
    breaker = registry.breaker(DSN_BREAKER, component="database", config=BreakerConfig())

    @breaker
    def query() -> None:
        raise ConnectionError("connection refused by db.internal:5432 password=hunter2")

    for _ in range(5):  # five consecutive failures trip it
        with pytest.raises(ConnectionError):
            query()
    assert breaker.state is BreakerState.OPEN
    clock.advance(2.5)

    async def handler(request: Request) -> Response:
        query()
        return PlainTextResponse("unreachable")

    app = app_with(board, Route("/report", handler), random_source=FixedRandom(0))
    async with client(app) as http:
        response = await http.get("/report")
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(int(-(-breaker.retry_after() // 1)))
    assert response.headers["brownout-level"] == "optimal"
    assert response.json()["component"] == "database"
    for secret in ("hunter2", "db.internal", "postgresql", "refused"):
        assert secret not in response.text


async def test_circuit_open_after_the_response_started_is_not_rewritten(
    board: SnapshotBoard,
) -> None:
    async def chunks() -> Any:
        yield b"first\n"
        raise CircuitOpenError("cache-1", "cache", 5.0)

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks())

    middleware = BrownoutMiddleware(Starlette(routes=[Route("/stream", stream)]), board=board)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(1)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        # Like every ASGI server: a second response start is a protocol error.
        if message["type"] == "http.response.start" and sent:
            raise RuntimeError("response already started")
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/stream", "headers": [],
             "query_string": b"", "asgi": {"version": "3.0", "spec_version": "2.4"}}  # fmt: skip
    with pytest.raises(CircuitOpenError):
        await middleware(scope, receive, send)
    starts = [message for message in sent if message["type"] == "http.response.start"]
    assert [start["status"] for start in starts] == [200]
    assert sent[1]["body"] == b"first\n"


async def test_batch_routes_get_a_concurrency_limit_scaled_by_level(
    board: SnapshotBoard,
) -> None:
    release = asyncio.Event()
    both_running = asyncio.Event()
    running = 0

    @features(requires=["batch"])
    async def export(request: Request) -> PlainTextResponse:
        nonlocal running
        running += 1
        if running == 2:
            both_running.set()
        await release.wait()
        running -= 1
        return PlainTextResponse("done")

    settings = MiddlewareSettings(batch_limit=4)
    app = app_with(board, Route("/export", export), settings=settings)
    publish(board, Level.LIMITED)  # multiplier 0.5: 2 at a time
    async with client(app) as http:
        held = [asyncio.create_task(http.get("/export")) for _ in range(2)]
        await asyncio.wait_for(both_running.wait(), 10)
        rejected = await http.get("/export")
        assert rejected.status_code == 503
        assert rejected.json()["type"] == "urn:brownout:problem:batch-capacity"
        assert rejected.json()["feature"] == "batch"
        release.set()
        assert [(await task).status_code for task in held] == [200, 200]
        assert (await http.get("/export")).status_code == 200
        publish(board, Level.EMERGENCY)  # multiplier 0: batch is off
        assert (await http.get("/export")).json()["type"] == "urn:brownout:problem:feature-off"


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_rejection_response_is_customisable(board: SnapshotBoard, asynchronous: bool) -> None:
    def build(rejection: Rejection) -> Response:
        return JSONResponse(
            {"sorry": rejection.feature, "level": rejection.level.label},
            status_code=503,
            headers=rejection.headers(),
        )

    async def build_async(rejection: Rejection) -> Response:
        return build(rejection)

    app = app_with(board, Route("/", fresh()), rejection=build_async if asynchronous else build)
    publish(board, Level.EMERGENCY, retry_after=3)
    async with client(app) as http:
        response = await http.get("/")
    assert response.status_code == 503
    assert response.json() == {"sorry": "read", "level": "emergency"}
    assert response.headers["brownout-level"] == "emergency"


async def test_unknown_feature_in_a_declaration_fails_startup(board: SnapshotBoard) -> None:
    app = app_with(board, Route("/chat", features(optional=["a1"])(fresh())))
    async with lifespan(app) as sent:
        assert sent[-1]["type"] == "lifespan.startup.failed"
        message = sent[-1]["message"]
    assert "'a1'" in message
    assert "/chat" in message
    assert "optional" in message


async def test_unknown_feature_in_path_policies_fails_startup(board: SnapshotBoard) -> None:
    settings = MiddlewareSettings(paths=[PathPolicy(pattern="/legacy/*", requires=["wirte"])])
    app = app_with(board, Route("/", fresh()), settings=settings)
    middleware = BrownoutMiddleware(app, board=board, settings=settings)
    with pytest.raises(RoutePolicyError, match=r"paths\[0\].*'wirte'"):
        middleware.prepare(app)


def test_declarations_and_settings_reject_bad_values() -> None:
    with pytest.raises(TypeError, match="requires must be a list"):
        features(requires="read")
    with pytest.raises(ValidationError, match="admin_api_key"):
        MiddlewareSettings(admin_api_key="short")
    with pytest.raises(ValidationError, match="livez_path"):
        MiddlewareSettings(livez_path="livez")
    with pytest.raises(ValidationError, match="pattern"):
        PathPolicy(pattern="legacy/*")
    with pytest.raises(ValidationError, match="batch_limit"):
        MiddlewareSettings(batch_limit=0)


async def test_path_policies_cover_apps_that_cannot_be_edited(board: SnapshotBoard) -> None:
    settings = MiddlewareSettings(
        paths=[
            PathPolicy(pattern="/reports/*", methods=["GET"], requires=["read"],
                       optional=["cache_read"]),
            PathPolicy(pattern="/assistant*", requires=["ai"]),
        ]
    )  # fmt: skip

    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("raw")(scope, receive, send)

    for app in (
        BrownoutMiddleware(raw_app, board=board, settings=settings),
        app_with(
            board,
            Route("/reports/{name}", fresh()),
            Route("/assistant", fresh()),
            settings=settings,
        ),
    ):
        publish(board, Level.LIMITED)
        async with client(app) as http:
            report = await http.get("/reports/q3")
            assert report.status_code == 200
            assert report.headers["brownout-degraded"] == "cache_read"
            assert (await http.get("/assistant")).status_code == 503


async def test_decisions_are_exported_as_an_observable_counter(board: SnapshotBoard) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = app_with(
        board,
        Route("/chat", features(requires=["read"], optional=["ai"])(fresh())),
        meter_provider=provider,
    )
    async with client(app) as http:
        publish(board, Level.OPTIMAL)
        await http.get("/chat")
        publish(board, Level.LIMITED)
        await http.get("/chat")
        await http.get("/chat")
        publish(board, Level.EMERGENCY)
        await http.get("/chat")
    assert _decision_points(reader) == {
        ("read", "served", "optimal"): 1,
        ("read", "served", "degraded"): 0,  # the route's other decisions, reported at 0
        ("read", "degraded", "limited"): 2,
        ("read", "degraded", "minimal"): 0,
        ("read", "rejected", "emergency"): 1,
    }
    provider.shutdown()


def _decision_points(reader: InMemoryMetricReader) -> dict[tuple[str, str, str], Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        (p.attributes["feature"], p.attributes["decision"], p.attributes["level"]): p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "brownout.http.requests"
        for p in metric.data.data_points
    }


async def test_a_routes_rejections_are_reported_at_zero_before_the_first_one(
    board: SnapshotBoard,
) -> None:
    # increase() and rate() need a sample before the first increment: a series that
    # starts at its first rejections hides them from every panel.
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = app_with(
        board,
        Route("/search", features(requires=["read"], components=["database"])(fresh())),
        Route("/assistant", features(requires=["ai"])(fresh())),
        meter_provider=provider,
    )
    async with client(app) as http:
        publish(board, Level.OPTIMAL)
        assert (await http.get("/search")).status_code == 200
        assert (await http.get("/assistant")).status_code == 200
        before = _decision_points(reader)
        # A down database can reject /search at any level; /assistant is rejected from
        # LIMITED on, as the default matrix turns ai off there.
        for level in Level:
            assert before[("read", "rejected", level.label)] == 0
        assert {key: value for key, value in before.items() if key[0] == "ai"} == {
            ("ai", "served", "optimal"): 1,
            ("ai", "served", "degraded"): 0,
            ("ai", "rejected", "limited"): 0,
            ("ai", "rejected", "minimal"): 0,
            ("ai", "rejected", "emergency"): 0,
        }
        publish(board, Level.LIMITED)
        assert (await http.get("/assistant")).status_code == 503
    assert _decision_points(reader)[("ai", "rejected", "limited")] == 1
    provider.shutdown()
