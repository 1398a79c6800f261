"""Operator overrides: a level forced for a while, and the master switch."""

from __future__ import annotations

import math
from dataclasses import dataclass

from brownout.levels import Level


@dataclass(frozen=True, slots=True)
class ForcedLevel:
    level: Level
    reason: str
    until: float
    """Clock reading when it expires (``inf``: until cleared)."""


class Overrides:
    """What an operator has pinned. A forced level wins over the master switch; with the
    switch off and nothing forced the level is OPTIMAL."""

    __slots__ = ("automatic", "configured_automatic", "forced")

    def __init__(self, automatic: bool) -> None:
        self.configured_automatic = automatic
        self.automatic = automatic
        self.forced: ForcedLevel | None = None

    def force(self, level: Level | str | int, ttl: float | None, reason: str, now: float) -> None:
        target = Level.parse(level)
        if ttl is not None and not (ttl > 0 and math.isfinite(ttl)):
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        reason = reason.strip() if isinstance(reason, str) else ""
        if not reason:
            raise ValueError("reason must be a non-empty string: say why the level is forced")
        until = math.inf if ttl is None else now + ttl
        self.forced = ForcedLevel(target, reason, until)

    def clear(self) -> None:
        """Drop the forced level and put the master switch back where settings had it."""
        self.forced = None
        self.automatic = self.configured_automatic

    def current(self, now: float) -> tuple[Level, str] | None:
        """The pinned level and why, or ``None`` when the level is automatic."""
        forced = self.forced
        if forced is not None:
            if now < forced.until:
                return forced.level, f"forced: {forced.reason}"
            self.forced = None
        if not self.automatic:
            return Level.OPTIMAL, "automatic degradation is off"
        return None

    def seconds_left(self, now: float) -> float | None:
        forced = self.forced
        if forced is None or math.isinf(forced.until):
            return None
        return max(0.0, forced.until - now)
