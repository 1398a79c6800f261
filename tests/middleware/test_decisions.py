"""Every cell of DESIGN.md's default matrix gives the documented decision over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

import brownout.middleware
from brownout.health.snapshot import SnapshotBoard
from brownout.levels import Level
from brownout.middleware import BrownoutMiddleware, BrownoutState, features, router_defaults
from brownout.middleware.fastapi import features as depends_on
from tests.middleware.conftest import client, publish

LEVELS = list(Level)
# DESIGN.md "Levels and the feature matrix", written out rather than read from the code.
DOCUMENTED = {
    "health": "11111",
    "read": "11110",
    "write": "11100",
    "cache_read": "11000",
    "cache_write": "10000",
    "ai": "11000",
    "batch": "11110",
}
CELLS = [
    (feature, level, on == "1")
    for feature, row in DOCUMENTED.items()
    for level, on in zip(LEVELS, row, strict=True)
]


def describe(request: Request) -> JSONResponse:
    state: BrownoutState = request.state.brownout
    assert request.scope["brownout"] is state
    return JSONResponse(
        {
            "level": state.level.label,
            "off": sorted(state.off),
            "degraded": list(state.degraded),
            "batch_multiplier": state.batch_multiplier,
            "ai": brownout.middleware.enabled("ai"),
        }
    )


def starlette_app(board: SnapshotBoard) -> Starlette:
    routes = []
    for feature in DOCUMENTED:

        async def requires(request: Request) -> JSONResponse:
            return describe(request)

        async def optional(request: Request) -> JSONResponse:
            return describe(request)

        routes.append(Route(f"/requires/{feature}", features(requires=[feature])(requires)))
        routes.append(
            Route(f"/optional/{feature}", features(requires=[], optional=[feature])(optional))
        )

    async def undeclared(request: Request) -> JSONResponse:
        return describe(request)

    async def item(request: Request) -> JSONResponse:
        return describe(request)

    mounted = router_defaults(
        Router([Route("/items/{item_id:int}", item, methods=["GET", "PUT"])]),
        optional=["cache_read"],
    )
    routes += [
        Route("/undeclared", undeclared, methods=["GET", "HEAD", "OPTIONS", "POST", "DELETE"]),
        Mount("/shop", app=mounted),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(BrownoutMiddleware, board=board)
    return app


def fastapi_app(board: SnapshotBoard) -> FastAPI:
    app = FastAPI()
    for feature in DOCUMENTED:
        needs = depends_on(requires=[feature])
        can_skip = depends_on(requires=[], optional=[feature])

        def requires(state: Any = needs) -> dict[str, Any]:
            return {"level": state.level.label, "degraded": list(state.degraded)}

        def optional(state: Any = can_skip) -> dict[str, Any]:
            return {"level": state.level.label, "degraded": list(state.degraded)}

        app.get(f"/requires/{feature}")(requires)
        app.get(f"/optional/{feature}")(optional)

    router = APIRouter(prefix="/v1", dependencies=[depends_on(optional=["ai"])])

    @router.get("/things/{thing_id}")
    async def thing(thing_id: int, request: Request) -> dict[str, Any]:
        state: BrownoutState = request.state.brownout
        return {"degraded": list(state.degraded), "ai": brownout.middleware.enabled("ai")}

    @router.post("/things")
    def make_thing() -> dict[str, Any]:
        return {"ai": brownout.middleware.enabled("ai")}

    app.include_router(router, prefix="/api")
    app.add_middleware(BrownoutMiddleware, board=board)
    return app


@pytest.mark.parametrize("framework", [starlette_app, fastapi_app])
@pytest.mark.parametrize(("feature", "level", "on"), CELLS)
async def test_required_feature_cell(
    board: SnapshotBoard, framework: Any, feature: str, level: Level, on: bool
) -> None:
    app = framework(board)
    publish(board, level, retry_after=7.0)
    async with client(app) as http:
        response = await http.get(f"/requires/{feature}")
    if on:
        assert response.status_code == 200
        assert response.json()["level"] == level.label
        assert "brownout-degraded" not in response.headers
    else:
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["brownout-level"] == level.label
        assert response.headers["cache-control"] == "no-store"
        assert 7 <= int(response.headers["retry-after"]) <= 9  # dwell, up to 20% jitter
        body = response.json()
        assert body["status"] == 503
        assert body["feature"] == feature
        assert body["level"] == level.label
        assert feature in body["detail"]
        assert level.label in body["detail"]


@pytest.mark.parametrize("framework", [starlette_app, fastapi_app])
@pytest.mark.parametrize(("feature", "level", "on"), CELLS)
async def test_optional_feature_cell(
    board: SnapshotBoard, framework: Any, feature: str, level: Level, on: bool
) -> None:
    app = framework(board)
    publish(board, level)
    async with client(app) as http:
        response = await http.get(f"/optional/{feature}")
    assert response.status_code == 200
    if on:
        assert "brownout-degraded" not in response.headers
        assert response.json()["degraded"] == []
    else:
        assert response.headers["brownout-degraded"] == feature
        assert response.json()["degraded"] == [feature]


@pytest.mark.parametrize(
    ("method", "served_until"),
    [
        ("GET", Level.MINIMAL),
        ("HEAD", Level.MINIMAL),
        ("OPTIONS", Level.MINIMAL),
        ("POST", Level.LIMITED),
        ("DELETE", Level.LIMITED),
    ],
)
async def test_undeclared_routes_need_read_or_write(
    board: SnapshotBoard, method: str, served_until: Level
) -> None:
    app = starlette_app(board)
    async with client(app) as http:
        for level in Level:
            publish(board, level)
            response = await http.request(method, "/undeclared")
            expected = 200 if level <= served_until else 503
            assert response.status_code == expected, (method, level)
            if expected == 503 and method != "HEAD":
                assert response.json()["feature"] == (
                    "read" if method not in {"POST", "DELETE"} else "write"
                )


async def test_handler_sees_level_flags_and_batch_multiplier(board: SnapshotBoard) -> None:
    app = starlette_app(board)
    publish(board, Level.LIMITED)
    async with client(app) as http:
        response = await http.get("/optional/ai")
    assert response.headers["brownout-degraded"] == "ai"
    assert response.json() == {
        "level": "limited",
        "off": ["ai", "cache_read", "cache_write"],
        "degraded": ["ai"],
        "batch_multiplier": 0.5,
        "ai": False,
    }


async def test_mounted_router_defaults_and_path_parameters(board: SnapshotBoard) -> None:
    app = starlette_app(board)
    async with client(app) as http:
        publish(board, Level.LIMITED)
        for item_id in (1, 2, 3):
            response = await http.get(f"/shop/items/{item_id}")
            assert response.status_code == 200
            assert response.headers["brownout-degraded"] == "cache_read"
        assert (await http.put("/shop/items/1")).status_code == 200
        publish(board, Level.MINIMAL)
        assert (await http.get("/shop/items/1")).status_code == 200
        rejected = await http.put("/shop/items/1")
        assert rejected.status_code == 503
        assert rejected.json()["feature"] == "write"


async def test_fastapi_router_dependency_declares_defaults(board: SnapshotBoard) -> None:
    app = fastapi_app(board)
    async with client(app) as http:
        publish(board, Level.OPTIMAL)
        response = await http.get("/api/v1/things/4")
        assert response.json() == {"degraded": [], "ai": True}
        publish(board, Level.LIMITED)
        response = await http.get("/api/v1/things/4")
        assert response.headers["brownout-degraded"] == "ai"
        assert response.json() == {"degraded": ["ai"], "ai": False}
        # A sync handler runs in a worker thread and still sees the request's decision.
        assert (await http.post("/api/v1/things")).json() == {"ai": False}
        publish(board, Level.MINIMAL)
        assert (await http.post("/api/v1/things")).status_code == 503
        assert (await http.get("/api/v1/things/4")).status_code == 200


async def test_unmatched_paths_fall_back_to_method_defaults(board: SnapshotBoard) -> None:
    app = starlette_app(board)
    async with client(app) as http:
        publish(board, Level.OPTIMAL)
        assert (await http.get("/nowhere")).status_code == 404
        publish(board, Level.EMERGENCY)
        assert (await http.get("/nowhere")).status_code == 503
