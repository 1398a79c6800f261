"""The record of level changes: the last N, with reasons."""

from __future__ import annotations

from dataclasses import dataclass

from brownout.levels import Level


@dataclass(frozen=True, slots=True)
class Contributor:
    """A component that cost the overall score points."""

    component: str
    score: float
    points: float
    """Overall score points lost to this component (its weight share of 100 - score)."""


@dataclass(frozen=True, slots=True)
class LevelChange:
    at: float
    """Monotonic clock reading."""
    old: Level
    new: Level
    score: float
    reason: str
    contributors: tuple[Contributor, ...] = ()
    override: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at,
            "old": self.old.label,
            "new": self.new.label,
            "score": round(self.score, 2),
            "reason": self.reason,
            "contributors": [
                {"component": c.component, "score": round(c.score, 2), "points": round(c.points, 2)}
                for c in self.contributors
            ],
            "override": self.override,
        }
