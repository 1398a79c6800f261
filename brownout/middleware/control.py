"""What the middleware needs from the health aggregator, and nothing more.

The middleware reads levels from a :class:`~brownout.health.SnapshotBoard`; it only calls
this protocol for lifespan (start/stop the aggregator and its recovery loop) and for the
admin API. Anything with these methods fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from brownout.levels import Level


@runtime_checkable
class HealthControl(Protocol):
    async def start(self) -> None:
        """Begin evaluating and publishing snapshots (called at app startup)."""

    async def stop(self) -> None:
        """Stop background work (called at app shutdown)."""

    def force_level(self, level: Level, ttl: float, reason: str) -> None:
        """Pin ``level`` for ``ttl`` seconds, then let the evaluation take over again.
        The pinned level must reach the board before this returns."""

    def clear_overrides(self) -> None:
        """Drop a pinned level now."""

    def status(self) -> Mapping[str, Any]:
        """JSON-serialisable details for the admin status call (overrides, recovery...)."""
