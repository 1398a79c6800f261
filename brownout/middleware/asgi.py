"""``BrownoutMiddleware``: pure ASGI; serves, degrades or rejects each request by level."""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Awaitable, Callable

from opentelemetry.metrics import MeterProvider
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brownout.breaker import BreakerRegistry, CircuitOpenError, breakers
from brownout.features import FeatureDisabledError, FeatureMatrix
from brownout.health.snapshot import SnapshotBoard
from brownout.health.snapshot import board as default_board
from brownout.middleware import endpoints
from brownout.middleware.admin import AdminAPI
from brownout.middleware.auth import AdminKey
from brownout.middleware.context import current
from brownout.middleware.control import HealthControl
from brownout.middleware.decision import RuleFactory
from brownout.middleware.guard import Guard
from brownout.middleware.metrics import DecisionCounts
from brownout.middleware.ratelimit import ClientBuckets
from brownout.middleware.responses import RejectionBuilder, RetryAfter, problem, problem_response
from brownout.middleware.routes import RouteTable, build_table
from brownout.settings import MiddlewareSettings

DEGRADED_HEADER = b"brownout-degraded"

Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]


class BrownoutMiddleware:
    """Serve, serve degraded or reject each request by the current level.

    ``app.add_middleware(BrownoutMiddleware, settings=..., control=...)`` for Starlette and
    FastAPI, or ``BrownoutMiddleware(asgi_app, ...)`` around anything else (then only path
    patterns and method defaults apply). With ``control``, the app's lifespan starts and
    stops it. Route declarations are read and checked once, at startup (or on the first
    request when the server runs no lifespan).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: MiddlewareSettings | None = None,
        board: SnapshotBoard | None = None,
        matrix: FeatureMatrix | None = None,
        control: HealthControl | None = None,
        registry: BreakerRegistry = breakers,
        rejection: RejectionBuilder = problem_response,
        routes_from: object | None = None,
        clock: Callable[[], float] = time.monotonic,
        random_source: Callable[[], float] = random.random,
        meter_provider: MeterProvider | None = None,
        metrics_text: Callable[[], bytes] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings = settings if settings is not None else MiddlewareSettings()
        if board is None:
            # A control that publishes somewhere (HealthService) names the board to read.
            board = getattr(control, "board", None) or default_board
        self.board = board
        self.control = control
        self.readiness = endpoints.Readiness()
        self.counts = DecisionCounts()
        self.counts.export(meter_provider)
        self._counts = self.counts.counts
        rule_matrix = matrix if matrix is not None else board.matrix
        self._factory = RuleFactory(
            rule_matrix,
            settings.feature_components,
            on_new_rule=lambda rule: self.counts.expect(rule.metric_keys(rule_matrix)),
        )
        self._routes_from = routes_from
        self._table: RouteTable | None = None
        self._guard = Guard(
            board,
            RetryAfter(settings.retry_jitter, random_source),
            rejection,
            self.counts,
            settings.batch_limit,
        )
        key = settings.admin_api_key
        self._key = AdminKey(key) if key is not None else None
        self._endpoints: dict[str, Endpoint] = {
            settings.path("livez"): self._livez,
            settings.path("readyz"): self._readyz,
            settings.path("health"): self._health,
        }
        if settings.metrics_path is not None:
            self._metrics_text = metrics_text
            self._endpoints[settings.path("metrics")] = self._metrics
        if self._key is not None:
            self._admin = AdminAPI(
                settings.path("admin"),
                self._key,
                ClientBuckets(settings.admin_rate, settings.admin_burst, clock),
                board,
                registry,
                control,
            )
            self._endpoints.update(dict.fromkeys(self._admin.routes, self._admin_endpoint))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            endpoint = self._endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        elif kind != "websocket":
            await self.app(scope, receive, send)
            return
        # The common path, inlined: every extra coroutine frame costs ~0.2 us here.
        table = self._table
        if table is None:
            table = self.prepare(scope.get("app"))
        rule = (
            None
            if scope.get("root_path")
            else table.cache.get((scope.get("method"), scope["path"]))
        )
        if rule is None:
            rule = table.resolve(scope)
        snapshot = self.board.snapshot
        last_snapshot, verdict = rule.last
        if last_snapshot is not snapshot or verdict is None:
            verdict = rule.verdict(snapshot)
        guard = self._guard
        if verdict.missing is not None or rule.components or rule.batch:
            rejection = guard.admit(rule, verdict, snapshot)
            if rejection is not None:
                await guard.reject(rejection, scope, receive, send)
                return
        counts = self._counts
        key = verdict.metric_key
        counts[key] = counts.get(key, 0) + 1
        state = verdict.state
        scope["brownout"] = state
        request_state = scope.get("state")  # what Starlette's request.state reads
        if request_state is None:
            scope["state"] = {"brownout": state}
        else:
            request_state["brownout"] = state
        token = current.set(state)
        if rule.batch:
            guard.batch_in_flight += 1
        try:
            if kind != "http":
                await self.app(scope, receive, send)
                return
            header = verdict.degraded_header
            if header is None:
                # Served as is: the server's own send, no wrapper (~0.3 us a request). An
                # open circuit escaping the handler becomes a 503 only while nothing was
                # sent; whether something was is the server's to say: ASGI servers refuse a
                # second response start, and then the original error goes on unchanged, so
                # a started stream is never cut or re-sent.
                try:
                    await self.app(scope, receive, send)
                except (CircuitOpenError, FeatureDisabledError) as error:
                    await guard.reject_error_unless_started(error, rule, scope, receive, send)
                return
            started = False

            # Adds Brownout-Degraded and notes whether the response started. A plain
            # function returning the server's awaitable: an extra coroutine frame per
            # message would cost ~0.25 us.
            def guarded_send(message: Message) -> Awaitable[None]:
                nonlocal started
                if not started and message["type"] == "http.response.start":
                    started = True
                    headers = [*message.get("headers", ()), (DEGRADED_HEADER, header)]
                    message = {**message, "headers": headers}
                return send(message)

            try:
                await self.app(scope, receive, guarded_send)
            except (CircuitOpenError, FeatureDisabledError) as error:
                if started:
                    raise
                await guard.reject_error(error, rule, scope, receive, send)
        finally:
            current.reset(token)
            if rule.batch:
                guard.batch_in_flight -= 1

    def prepare(self, app: object | None = None) -> RouteTable:
        """Read and check the app's route declarations (``RoutePolicyError`` names the
        route and the unknown feature). Startup calls this; so may tests."""
        source = self._routes_from
        if source is None:
            source = self.app if hasattr(self.app, "routes") else app
        table = build_table(
            source, self._factory, self.settings.paths, self.settings.route_cache_size
        )
        if type(source).__module__.startswith("fastapi"):
            importlib.import_module("brownout.middleware.fastapi").document_rejections(source)
        self._table = table
        return table

    # -- lifespan ------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first["type"] == "lifespan.startup":
            try:
                self.prepare(scope.get("app"))
                if self.control is not None:
                    await self.control.start()
            except Exception as error:
                await send({"type": "lifespan.startup.failed", "message": f"brownout: {error}"})
                return
        pending: list[Message] = [first]

        async def lifespan_receive() -> Message:
            message = pending.pop() if pending else await receive()
            if message["type"] == "lifespan.shutdown":
                self.readiness.stopping = True
            return message

        async def lifespan_send(message: Message) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                self.readiness.started = True
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    if self.control is not None:
                        await self.control.stop()
                except Exception as error:
                    message = {"type": "lifespan.shutdown.failed", "message": f"brownout: {error}"}
            await send(message)

        await self.app(scope, lifespan_receive, lifespan_send)

    # -- endpoints -----------------------------------------------------------------------

    async def _livez(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _probe(scope, endpoints.livez())(scope, receive, send)

    async def _readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = endpoints.readyz(self.readiness, self.board, self.settings.unready_at_emergency)
        await _probe(scope, response)(scope, receive, send)

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = endpoints.health(scope, self.board, self._key)
        await _probe(scope, response)(scope, receive, send)

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = endpoints.metrics(self._metrics_text)
        await _probe(scope, response)(scope, receive, send)

    async def _admin_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._admin.handle(scope, receive)
        await response(scope, receive, send)


def _probe(scope: Scope, response: Response) -> Response:
    if scope["method"] in ("GET", "HEAD"):
        return response
    return problem(405, f"use GET on {scope['path']}", {"Allow": "GET, HEAD"})
