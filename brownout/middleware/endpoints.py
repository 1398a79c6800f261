"""``/livez``, ``/readyz``, ``/health`` and ``/metrics``: answered by the middleware itself,
never shed, never calling a dependency."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Scope

from brownout.breaker import BreakerState
from brownout.health.snapshot import ComponentState, Snapshot, SnapshotBoard
from brownout.levels import Level
from brownout.middleware.auth import AdminKey

HEALTH_JSON = "application/health+json"

_COMPONENT_STATUS = {
    ComponentState.HEALTHY: "pass",
    ComponentState.DEGRADED: "warn",
    ComponentState.FAILING: "warn",
    ComponentState.CRITICAL: "fail",
}
_BREAKER_FAIL = frozenset({BreakerState.OPEN, BreakerState.FORCED_OPEN})


class Readiness:
    """Ready between the end of startup and the start of shutdown."""

    def __init__(self) -> None:
        self.started = False
        self.stopping = False

    @property
    def ready(self) -> bool:
        return self.started and not self.stopping


def level_status(level: Level) -> str:
    if level is Level.OPTIMAL:
        return "pass"
    if level is Level.EMERGENCY:
        return "fail"
    return "warn"


def livez() -> Response:
    return Response(b"ok\n", media_type="text/plain", headers={"Cache-Control": "no-store"})


def readyz(readiness: Readiness, board: SnapshotBoard, unready_at_emergency: bool) -> Response:
    if not readiness.started:
        return _plain(503, b"starting\n")
    if readiness.stopping:
        return _plain(503, b"shutting down\n")
    if unready_at_emergency and board.snapshot.level is Level.EMERGENCY:
        return _plain(503, b"emergency\n")
    return _plain(200, b"ready\n")


def _plain(status: int, body: bytes) -> Response:
    return Response(
        body, status_code=status, media_type="text/plain", headers={"Cache-Control": "no-store"}
    )


def health(scope: Scope, board: SnapshotBoard, key: AdminKey | None) -> Response:
    snapshot = board.snapshot
    status = level_status(snapshot.level)
    body: dict[str, Any] = {"status": status, "description": "brownout degradation level"}
    if status != "pass":
        body["output"] = f"level {snapshot.level.label}"
    if key is not None and key.check(scope):
        body["notes"] = [snapshot.reason] + (
            [f"override: {snapshot.override}"] if snapshot.override else []
        )
        body["checks"] = health_checks(snapshot)
    return Response(
        json.dumps(body).encode(),
        status_code=503 if status == "fail" else 200,
        media_type=HEALTH_JSON,
        headers={"Cache-Control": "no-store"},
    )


def health_checks(snapshot: Snapshot) -> dict[str, list[dict[str, Any]]]:
    checks: dict[str, list[dict[str, Any]]] = {
        "brownout:level": [
            {
                "componentType": "system",
                "observedValue": snapshot.level.label,
                "status": level_status(snapshot.level),
            }
        ],
        "brownout:score": [
            {
                "componentType": "system",
                "observedValue": round(snapshot.score, 2),
                "observedUnit": "percent",
                "status": level_status(snapshot.level),
            }
        ],
    }
    for name, component in sorted(snapshot.components.items()):
        checks[f"{name}:score"] = [
            {
                "componentId": name,
                "componentType": "component",
                "observedValue": round(component.score, 2),
                "observedUnit": "percent",
                "status": _COMPONENT_STATUS[component.state],
                "output": component.state.label,
            }
        ]
        if component.breakers:
            checks[f"{name}:breakers"] = [
                {
                    "componentId": breaker.name,
                    "componentType": "breaker",
                    "observedValue": breaker.state.value,
                    "status": "fail" if breaker.state in _BREAKER_FAIL else "pass",
                    "retryAfter": breaker.retry_after,
                }
                for breaker in component.breakers
            ]
    return checks


def metrics(generate: Callable[[], bytes] | None = None) -> Response:
    """Prometheus text from ``prometheus_client``'s default registry."""
    client = importlib.import_module("prometheus_client")
    body = generate() if generate is not None else client.generate_latest()
    return Response(body, media_type=client.CONTENT_TYPE_LATEST)
