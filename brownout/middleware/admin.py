"""The admin API: read status, force a level, force a breaker, clear overrides.

Off unless a key is configured. Every call spends a rate-limit token before the key is
checked (so guessing is slow too). Bad input is answered with a 4xx problem naming the
field, and changes nothing. Every change is logged as one JSON line: who (the key's id),
what, why.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope

from brownout.breaker import BreakerRegistry, BreakerState
from brownout.health.snapshot import Snapshot, SnapshotBoard
from brownout.levels import Level
from brownout.middleware.auth import AdminKey
from brownout.middleware.control import HealthControl
from brownout.middleware.endpoints import health_checks
from brownout.middleware.ratelimit import ClientBuckets
from brownout.middleware.responses import problem

audit = logging.getLogger("brownout.admin")

MAX_BODY = 16 * 1024
MAX_TTL = 7 * 24 * 3600.0


class AdminError(Exception):
    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


Handler = Callable[[Scope, Receive, str], Awaitable[Response]]


class AdminAPI:
    def __init__(
        self,
        path: str,
        key: AdminKey,
        buckets: ClientBuckets,
        board: SnapshotBoard,
        registry: BreakerRegistry,
        control: HealthControl | None,
    ) -> None:
        self.key = key
        self.buckets = buckets
        self.board = board
        self.registry = registry
        self.control = control
        self.routes: dict[str, tuple[str, Handler]] = {
            f"{path}/status": ("GET", self._status),
            f"{path}/level": ("POST", self._force_level),
            f"{path}/breaker": ("POST", self._force_breaker),
            f"{path}/overrides": ("DELETE", self._clear_overrides),
        }

    async def handle(self, scope: Scope, receive: Receive) -> Response:
        method, handler = self.routes[scope["path"]]
        client = scope.get("client")
        host = client[0] if client else "unknown"
        wait = self.buckets.take(host)
        if wait > 0:
            return problem(
                429, "too many admin requests; slow down", {"Retry-After": str(math.ceil(wait))}
            )
        if not self.key.check(scope):
            return problem(
                401,
                "missing or wrong admin API key; send it as X-API-Key or Authorization: Bearer",
                {"WWW-Authenticate": "Bearer"},
            )
        if scope["method"] != method:
            return problem(405, f"use {method} on {scope['path']}", {"Allow": method})
        try:
            return await handler(scope, receive, host)
        except AdminError as error:
            return problem(error.status, error.detail, **error.extra)

    async def _status(self, scope: Scope, receive: Receive, host: str) -> Response:
        snapshot = self.board.snapshot
        body: dict[str, Any] = {**_describe(snapshot), "checks": health_checks(snapshot)}
        body["breakers"] = [
            {
                "name": breaker.name,
                "component": breaker.component,
                "state": breaker.state.value,
                "retry_after": breaker.retry_after(),
            }
            for breaker in self.registry
        ]
        if self.control is not None:
            body["control"] = dict(self.control.status())
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def _force_level(self, scope: Scope, receive: Receive, host: str) -> Response:
        body = await _json_object(receive)
        control = self._control()
        try:
            level = Level.parse(_field(body, "level", (str, int)))
        except ValueError as error:
            raise AdminError(422, str(error), field="level") from None
        ttl = _field(body, "ttl", (int, float))
        if isinstance(ttl, bool) or not math.isfinite(ttl) or not 0 < ttl <= MAX_TTL:
            raise AdminError(
                422, f"ttl must be seconds within (0, {MAX_TTL:.0f}], got {ttl!r}", field="ttl"
            )
        reason = _reason(body)
        control.force_level(level, float(ttl), reason)
        self._log(host, "force_level", reason, level=level.label, ttl=float(ttl))
        return JSONResponse(_describe(self.board.snapshot))

    async def _force_breaker(self, scope: Scope, receive: Receive, host: str) -> Response:
        body = await _json_object(receive)
        name = _field(body, "name", (str,))
        try:
            state = BreakerState.parse(_field(body, "state", (str,)))
        except ValueError as error:
            raise AdminError(422, str(error), field="state") from None
        if state in (BreakerState.OPEN, BreakerState.HALF_OPEN):
            raise AdminError(
                422,
                f"cannot force state {state.value!r}: traffic drives it; use forced_open, "
                "disabled, metrics_only or closed",
                field="state",
            )
        reason = _reason(body)
        if name not in self.registry:
            raise AdminError(404, f"no breaker named {name!r}", field="name")
        breaker = self.registry.get(name)
        breaker.force(state, reason)
        self._log(host, "force_breaker", reason, breaker=name, state=state.value)
        return JSONResponse({"name": name, "state": breaker.state.value})

    async def _clear_overrides(self, scope: Scope, receive: Receive, host: str) -> Response:
        body = await _json_object(receive, allow_empty=True)
        control = self._control()
        reason = _reason(body) if body else "cleared by operator"
        control.clear_overrides()
        self._log(host, "clear_overrides", reason)
        return JSONResponse(_describe(self.board.snapshot))

    def _control(self) -> HealthControl:
        if self.control is None:
            raise AdminError(
                409, "no health control is attached to the middleware; pass control=..."
            )
        return self.control

    def _log(self, host: str, action: str, reason: str, **what: Any) -> None:
        record = {"event": "brownout.admin", "who": self.key.key_id, "client": host}
        record.update(action=action, why=reason, **what)
        audit.info(json.dumps(record, sort_keys=True))


def _describe(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "level": snapshot.level.label,
        "score": snapshot.score,
        "reason": snapshot.reason,
        "override": snapshot.override,
        "retry_after": snapshot.retry_after,
        "enabled": sorted(snapshot.policy.enabled),
        "batch_multiplier": snapshot.policy.batch_multiplier,
    }


async def _json_object(receive: Receive, allow_empty: bool = False) -> dict[str, Any]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise AdminError(400, "client disconnected before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise AdminError(413, f"admin request bodies are limited to {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    if not raw.strip() and allow_empty:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise AdminError(400, f"request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise AdminError(400, "request body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, types: tuple[type, ...]) -> Any:
    if name not in body:
        raise AdminError(422, f"missing field {name!r}", field=name)
    value = body[name]
    if not isinstance(value, types) or isinstance(value, bool):
        expected = " or ".join(t.__name__ for t in types)
        raise AdminError(422, f"field {name!r} must be {expected}", field=name)
    return value


def _reason(body: dict[str, Any]) -> str:
    reason = _field(body, "reason", (str,)).strip()
    if not reason or len(reason) > 500:
        raise AdminError(422, "field 'reason' must be 1-500 characters", field="reason")
    return str(reason)
