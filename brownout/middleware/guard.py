"""Admission checks beyond the level (components down, batch capacity) and rejections:
the parts of a decision off the common path."""

from __future__ import annotations

import inspect
import math

from starlette.types import Receive, Scope, Send

from brownout.breaker import CircuitOpenError
from brownout.features import FeatureDisabledError
from brownout.health.snapshot import ComponentHealth, Snapshot, SnapshotBoard
from brownout.middleware.decision import REJECTED, Rule, Verdict
from brownout.middleware.metrics import DecisionCounts
from brownout.middleware.responses import (
    BATCH_CAPACITY,
    DEPENDENCY_DOWN,
    FEATURE_OFF,
    Rejection,
    RejectionBuilder,
    RetryAfter,
)
from brownout.middleware.websocket import deny


class Guard:
    def __init__(
        self,
        board: SnapshotBoard,
        retry_after: RetryAfter,
        build_rejection: RejectionBuilder,
        counts: DecisionCounts,
        batch_limit: int,
    ) -> None:
        self.board = board
        self.retry_after = retry_after
        self.build_rejection = build_rejection
        self.counts = counts
        self.batch_limit = batch_limit
        self.batch_in_flight = 0

    def admit(self, rule: Rule, verdict: Verdict, snapshot: Snapshot) -> Rejection | None:
        """Why the request must be rejected, or ``None`` to serve it (only called for rules
        that can reject: a feature off, components named, or batch capacity)."""
        if verdict.missing is not None:
            return Rejection(
                FEATURE_OFF, snapshot.level, verdict.missing, self.retry_after(snapshot.retry_after)
            )
        if rule.components:
            down = rule.down_component(snapshot.components)
            if down is not None:
                return self._dependency_down(rule, snapshot, down)
        if rule.batch:
            limit = math.ceil(self.batch_limit * verdict.state.batch_multiplier)
            if self.batch_in_flight >= limit:
                return Rejection(BATCH_CAPACITY, snapshot.level, "batch", self.retry_after(1.0))
        return None

    async def reject_error(
        self,
        error: CircuitOpenError | FeatureDisabledError,
        rule: Rule,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Answer an open circuit (or a refused feature) that escaped the handler before
        the response started."""
        await self.reject(self._from_error(error, rule), scope, receive, send)

    async def reject_error_unless_started(
        self,
        error: CircuitOpenError | FeatureDisabledError,
        rule: Rule,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """:meth:`reject_error` for a response nobody tracked: if the server refuses the
        503's start because the handler's response already started, ``error`` goes on."""
        try:
            await self.reject_error(error, rule, scope, receive, send)
        except Exception:
            raise error from None

    def _dependency_down(self, rule: Rule, snapshot: Snapshot, down: ComponentHealth) -> Rejection:
        waits = [status.retry_after for status in down.breakers if status.retry_after is not None]
        if waits:
            wait = min(waits)
        elif down.predicted_recovery is not None:
            wait = down.predicted_recovery
        else:
            wait = snapshot.retry_after
        return Rejection(
            DEPENDENCY_DOWN, snapshot.level, rule.feature, self.retry_after(wait), down.name
        )

    def _from_error(self, error: CircuitOpenError | FeatureDisabledError, rule: Rule) -> Rejection:
        snapshot = self.board.snapshot
        if isinstance(error, FeatureDisabledError):
            wait = error.retry_after if error.retry_after is not None else snapshot.retry_after
            return Rejection(FEATURE_OFF, error.level, error.feature, self.retry_after(wait))
        wait = _circuit_wait(error, snapshot)
        level = snapshot.level
        return Rejection(
            DEPENDENCY_DOWN, level, rule.feature, self.retry_after(wait), error.component
        )

    async def reject(
        self, rejection: Rejection, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.counts.add((rejection.feature, REJECTED, rejection.level.label))
        response = self.build_rejection(rejection)
        if inspect.isawaitable(response):
            response = await response
        if scope["type"] == "websocket":
            await deny(response, rejection, scope, receive, send)
        else:
            await response(scope, receive, send)


def _circuit_wait(error: CircuitOpenError, snapshot: Snapshot) -> float:
    if error.retry_after is not None:
        return error.retry_after
    # Forced open: the breaker cannot say; the component's prediction or the level's dwell can.
    health = snapshot.components.get(error.component)
    if health is not None and health.predicted_recovery is not None:
        return health.predicted_recovery
    return snapshot.retry_after
