"""The aggregator and its recovery loop as one unit an app starts and stops.

This is what ``BrownoutMiddleware(control=...)`` expects: the middleware starts it in the
app's lifespan, stops it at shutdown, and calls it from the admin API.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import MeterProvider

from brownout.breaker import BreakerRegistry, Clock, RandomSource, breakers
from brownout.health.aggregator import HealthAggregator
from brownout.health.probes import Probe
from brownout.health.recovery import RecoveryLoop
from brownout.health.snapshot import Snapshot, SnapshotBoard, board
from brownout.levels import Level
from brownout.settings import BrownoutSettings, HealthSettings


class HealthService:
    """``HealthAggregator`` + ``RecoveryLoop``, with the lifecycle and admin calls the
    middleware uses::

        health = HealthService(settings, probes=[redis_ping(cache)])
        app.add_middleware(BrownoutMiddleware, control=health)
    """

    def __init__(
        self,
        settings: HealthSettings | BrownoutSettings | None = None,
        *,
        probes: Iterable[Probe] = (),
        registry: BreakerRegistry = breakers,
        board: SnapshotBoard = board,
        meter_provider: MeterProvider | None = None,
        clock: Clock | None = None,
        random_source: RandomSource = random.random,
    ) -> None:
        self.aggregator = HealthAggregator(
            settings, registry=registry, board=board, meter_provider=meter_provider, clock=clock
        )
        self.recovery = RecoveryLoop(self.aggregator, probes, random_source=random_source)
        self.board = board

    @property
    def snapshot(self) -> Snapshot:
        return self.board.snapshot

    async def start(self) -> None:
        self.aggregator.tick()
        await self.recovery.start()

    async def stop(self) -> None:
        await self.recovery.stop()

    def close(self) -> None:
        """Detach from the registry and the meter provider (after :meth:`stop`)."""
        self.aggregator.close()

    def force_level(self, level: Level | str | int, ttl: float | None, reason: str) -> None:
        self.aggregator.force_level(level, reason=reason, ttl=ttl)

    def clear_overrides(self) -> None:
        self.aggregator.clear_overrides()

    def status(self) -> dict[str, Any]:
        return {**self.aggregator.status(), "probes": self._probe_status()}

    def _probe_status(self) -> list[dict[str, Any]]:
        return [
            {
                "probe": attempt.probe,
                "component": attempt.component,
                "ok": attempt.ok,
                "error": attempt.error,
            }
            for attempt in list(self.recovery.attempts)[-10:]
        ]
