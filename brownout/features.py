"""Features and the matrix that says which are on at each level.

A route (or a client call) needs features; the matrix turns a level into the set of
features that are on and the capacity multiplier for batch work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from brownout.levels import Level

HEALTH = "health"
READ = "read"
WRITE = "write"
CACHE_READ = "cache_read"
CACHE_WRITE = "cache_write"
AI = "ai"
BATCH = "batch"

BUILTIN_FEATURES: tuple[str, ...] = (HEALTH, READ, WRITE, CACHE_READ, CACHE_WRITE, AI, BATCH)


@dataclass(frozen=True, slots=True)
class LevelPolicy:
    """What is on at one level."""

    enabled: frozenset[str]
    batch_multiplier: float

    def allows(self, feature: str) -> bool:
        return feature in self.enabled


class FeatureMatrix:
    """Level -> :class:`LevelPolicy`, validated when built.

    ``batch`` is on at a level whose multiplier is above 0. Custom features may be added;
    every feature must be named at every level (on or off), so a typo fails at startup
    instead of silently switching a feature off.
    """

    __slots__ = ("_policies", "features")

    def __init__(
        self,
        enabled: Mapping[Level, Iterable[str]],
        batch_multipliers: Mapping[Level, float],
        features: Iterable[str] = BUILTIN_FEATURES,
    ) -> None:
        self.features = frozenset(features)
        policies = []
        for level in Level:
            if level not in enabled:
                raise ValueError(f"feature matrix: level {level.label!r} is missing")
            on = frozenset(enabled[level])
            unknown = on - self.features
            if unknown:
                raise ValueError(
                    f"feature matrix: unknown feature(s) {sorted(unknown)} at level "
                    f"{level.label!r}; known features: {sorted(self.features)}"
                )
            multiplier = float(batch_multipliers.get(level, 0.0))
            if not 0.0 <= multiplier <= 1.0:
                raise ValueError(
                    f"feature matrix: batch multiplier for {level.label!r} must be within "
                    f"0..1, got {multiplier}"
                )
            if multiplier > 0:
                on |= {BATCH}
            else:
                on -= {BATCH}
            policies.append(LevelPolicy(on | {HEALTH}, multiplier))
        self._policies = tuple(policies)

    def policy(self, level: Level) -> LevelPolicy:
        return self._policies[level]

    def check_feature(self, feature: str) -> str:
        """Return ``feature`` if the matrix knows it, else raise naming the known ones."""
        if feature not in self.features:
            raise ValueError(
                f"unknown feature {feature!r}; known features: {sorted(self.features)}"
            )
        return feature


DEFAULT_MATRIX = FeatureMatrix(
    enabled={
        Level.OPTIMAL: {READ, WRITE, CACHE_READ, CACHE_WRITE, AI},
        Level.DEGRADED: {READ, WRITE, CACHE_READ, AI},
        Level.LIMITED: {READ, WRITE},
        Level.MINIMAL: {READ},
        Level.EMERGENCY: set(),
    },
    batch_multipliers={
        Level.OPTIMAL: 1.0,
        Level.DEGRADED: 0.75,
        Level.LIMITED: 0.5,
        Level.MINIMAL: 0.25,
        Level.EMERGENCY: 0.0,
    },
)
"""DESIGN.md's default matrix."""


class FeatureDisabledError(RuntimeError):
    """Work that needs ``feature`` was refused because the current level turned it off.

    Raised by client instrumentations that enforce features (an OpenAI call while ``ai``
    is off); the middleware answers it like an open circuit: 503 with ``Retry-After``.
    """

    def __init__(self, feature: str, level: Level, retry_after: float | None = None) -> None:
        self.feature = feature
        self.level = level
        self.retry_after = retry_after
        super().__init__(f"feature {feature!r} is off at level {level.label}")
