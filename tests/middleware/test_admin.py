"""The admin API over HTTP: auth, rate limit, overrides with TTL, breaker forcing, bad input."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from brownout.breaker import BreakerRegistry, BreakerState
from brownout.health.snapshot import SnapshotBoard
from brownout.levels import Level
from brownout.middleware import BrownoutMiddleware, MiddlewareSettings
from brownout.testing import FakeClock
from tests.middleware.conftest import ADMIN_KEY, FakeControl, client

ADMIN = "/brownout/admin"
AUTH = {"X-API-Key": ADMIN_KEY}


async def write(request: Request) -> PlainTextResponse:
    return PlainTextResponse("written")


@pytest.fixture
def registry(clock: FakeClock) -> BreakerRegistry:
    registry = BreakerRegistry(clock=clock)
    registry.breaker("payments", component="external")
    return registry


@pytest.fixture
def app(
    board: SnapshotBoard, control: FakeControl, registry: BreakerRegistry, clock: FakeClock
) -> Starlette:
    app = Starlette(routes=[Route("/orders", write, methods=["POST"])])
    settings = MiddlewareSettings(admin_api_key=ADMIN_KEY, admin_rate=1.0, admin_burst=5)
    app.add_middleware(
        BrownoutMiddleware,
        board=board,
        control=control,
        registry=registry,
        settings=settings,
        clock=clock,
    )
    return app


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong-key-wrong-key-wrong"},
        {"X-API-Key": ADMIN_KEY[:-1]},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"Authorization": "Bearer nope"},
    ],
)
async def test_wrong_or_missing_keys_are_refused(
    app: Starlette, board: SnapshotBoard, headers: dict[str, str]
) -> None:
    async with client(app) as http:
        status = await http.get(f"{ADMIN}/status", headers=headers)
        forced = await http.post(
            f"{ADMIN}/level", headers=headers, json={"level": "emergency", "ttl": 60, "reason": "x"}
        )
    for response in (status, forced):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert "X-API-Key" in response.json()["detail"]
        assert ADMIN_KEY not in response.text
    assert board.snapshot.level is Level.OPTIMAL


@pytest.mark.parametrize("headers", [AUTH, {"Authorization": f"Bearer {ADMIN_KEY}"}])
async def test_the_right_key_reads_full_status(app: Starlette, headers: dict[str, str]) -> None:
    async with client(app) as http:
        response = await http.get(f"{ADMIN}/status", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["level"] == "optimal"
    assert body["breakers"] == [
        {"name": "payments", "component": "external", "state": "closed", "retry_after": 0.0}
    ]
    assert body["control"] == {"pinned": None}


async def test_override_changes_decisions_and_expires(
    app: Starlette, board: SnapshotBoard, control: FakeControl, clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    async with client(app) as http:
        assert (await http.post("/orders")).status_code == 200
        with caplog.at_level(logging.INFO, logger="brownout.admin"):
            forced = await http.post(
                f"{ADMIN}/level",
                headers=AUTH,
                json={"level": "minimal", "ttl": 300, "reason": "db failover drill"},
            )
        assert forced.status_code == 200
        assert forced.json()["level"] == "minimal"
        assert forced.json()["override"] == "db failover drill"
        rejected = await http.post("/orders")
        assert rejected.status_code == 503
        assert rejected.headers["brownout-level"] == "minimal"

        clock.advance(299)
        control.evaluate()
        assert (await http.post("/orders")).status_code == 503
        clock.advance(1)
        control.evaluate()
        assert board.snapshot.level is Level.OPTIMAL
        assert (await http.post("/orders")).status_code == 200

    [record] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "brownout.admin"]
    assert record["action"] == "force_level"
    assert record["why"] == "db failover drill"
    assert record["level"] == "minimal"
    assert record["ttl"] == 300
    assert record["who"].startswith("key:")
    assert ADMIN_KEY not in caplog.text


async def test_clear_overrides(app: Starlette, board: SnapshotBoard) -> None:
    async with client(app) as http:
        await http.post(
            f"{ADMIN}/level", headers=AUTH, json={"level": 4, "ttl": 60, "reason": "drill"}
        )
        assert board.snapshot.level is Level.EMERGENCY
        cleared = await http.request(
            "DELETE", f"{ADMIN}/overrides", headers=AUTH, json={"reason": "drill over"}
        )
        assert cleared.status_code == 200
        assert board.snapshot.level is Level.OPTIMAL
        assert (await http.post("/orders")).status_code == 200


async def test_force_a_breaker_state(
    app: Starlette, registry: BreakerRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    async with client(app) as http:
        with caplog.at_level(logging.INFO, logger="brownout.admin"):
            response = await http.post(
                f"{ADMIN}/breaker",
                headers=AUTH,
                json={"name": "payments", "state": "FORCED_OPEN", "reason": "provider incident"},
            )
        assert response.json() == {"name": "payments", "state": "forced_open"}
        assert registry.get("payments").state is BreakerState.FORCED_OPEN
        await http.post(
            f"{ADMIN}/breaker",
            headers=AUTH,
            json={"name": "payments", "state": "closed", "reason": "resolved"},
        )
        assert registry.get("payments").state is BreakerState.CLOSED
    record = json.loads(caplog.records[0].getMessage())
    assert (record["action"], record["breaker"], record["state"]) == (
        "force_breaker", "payments", "forced_open",
    )  # fmt: skip


BAD_INPUT = [
    ("POST", "level", b"{not json", 400, "not valid JSON"),
    ("POST", "level", b"[1, 2]", 400, "JSON object"),
    ("POST", "level", {"ttl": 60, "reason": "x"}, 422, "missing field 'level'"),
    ("POST", "level", {"level": "brownish", "ttl": 60, "reason": "x"}, 422, "unknown level"),
    ("POST", "level", {"level": 9, "ttl": 60, "reason": "x"}, 422, "unknown level"),
    ("POST", "level", {"level": "limited", "ttl": -5, "reason": "x"}, 422, "ttl"),
    ("POST", "level", {"level": "limited", "ttl": 0, "reason": "x"}, 422, "ttl"),
    ("POST", "level", {"level": "limited", "ttl": "60", "reason": "x"}, 422, "'ttl' must be"),
    ("POST", "level", {"level": "limited", "ttl": True, "reason": "x"}, 422, "'ttl' must be"),
    ("POST", "level", {"level": "limited", "ttl": 60}, 422, "missing field 'reason'"),
    ("POST", "level", {"level": "limited", "ttl": 60, "reason": "  "}, 422, "reason"),
    ("POST", "breaker", {"name": "nope", "state": "forced_open", "reason": "x"}, 404, "'nope'"),
    ("POST", "breaker", {"name": "payments", "state": "ajar", "reason": "x"}, 422, "state"),
    ("POST", "breaker", {"name": "payments", "state": "open", "reason": "x"}, 422, "traffic"),
    ("GET", "level", None, 405, "use POST"),
]


@pytest.mark.parametrize(("method", "what", "body", "status", "says"), BAD_INPUT)
async def test_malformed_admin_input_is_a_4xx_and_changes_nothing(
    app: Starlette, board: SnapshotBoard, registry: BreakerRegistry,
    method: str, what: str, body: Any, status: int, says: str,
) -> None:  # fmt: skip
    before = board.snapshot
    async with client(app) as http:
        if isinstance(body, bytes):
            response = await http.request(method, f"{ADMIN}/{what}", headers=AUTH, content=body)
        else:
            response = await http.request(method, f"{ADMIN}/{what}", headers=AUTH, json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    assert says in response.json()["detail"]
    assert board.snapshot is before
    assert registry.get("payments").state is BreakerState.CLOSED


async def test_admin_calls_are_rate_limited_per_client(app: Starlette, clock: FakeClock) -> None:
    async with client(app, peer=("10.0.0.7", 1234)) as http, client(app) as other:
        for _ in range(5):
            assert (await http.get(f"{ADMIN}/status", headers=AUTH)).status_code == 200
        limited = await http.get(f"{ADMIN}/status", headers=AUTH)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        # Wrong keys spend tokens too, and another client has its own bucket.
        assert (await other.get(f"{ADMIN}/status", headers=AUTH)).status_code == 200
        clock.advance(1.0)
        assert (await http.get(f"{ADMIN}/status", headers=AUTH)).status_code == 200
        assert (await http.get(f"{ADMIN}/status", headers=AUTH)).status_code == 429


async def test_admin_api_is_off_without_a_key(board: SnapshotBoard) -> None:
    app = Starlette(routes=[])
    app.add_middleware(BrownoutMiddleware, board=board)
    async with client(app) as http:
        assert (await http.get(f"{ADMIN}/status", headers=AUTH)).status_code == 404


async def test_admin_routes_are_never_shed(app: Starlette, board: SnapshotBoard) -> None:
    async with client(app) as http:
        await http.post(
            f"{ADMIN}/level", headers=AUTH, json={"level": "emergency", "ttl": 60, "reason": "x"}
        )
        assert (await http.get(f"{ADMIN}/status", headers=AUTH)).status_code == 200
        assert (await http.request("DELETE", f"{ADMIN}/overrides", headers=AUTH)).status_code == 200
