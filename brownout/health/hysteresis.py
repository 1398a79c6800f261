"""A rank (0 is best) picked from a score, with hysteresis.

Worsening applies at once. Improving needs the score at least ``margin`` points above the
next better rank's threshold, continuously for ``dwell`` seconds, and climbs one rank at a
time, each climb with a fresh dwell. Used for levels and for component states.
"""

from __future__ import annotations

from collections.abc import Sequence


class Hysteresis:
    __slots__ = ("_better_since", "margin", "rank", "since", "thresholds")

    def __init__(self, thresholds: Sequence[float], margin: float, now: float) -> None:
        self.thresholds = tuple(thresholds)
        """The lowest score of each rank, best first; below the last is the worst rank."""
        self.margin = margin
        self.rank = 0
        self.since = now
        self._better_since: float | None = None

    def target(self, score: float) -> int:
        for rank, threshold in enumerate(self.thresholds):
            if score >= threshold:
                return rank
        return len(self.thresholds)

    def update(self, score: float, now: float, dwell: float = 0.0, floor: int = 0) -> bool:
        """Move toward the rank ``score`` earns, never better than ``floor``; return
        whether the rank changed."""
        target = max(self.target(score), floor)
        if target > self.rank:
            self._better_since = None
            self._move(target, now)
            return True
        better = self.rank - 1
        if target == self.rank or floor > better or score < self.thresholds[better] + self.margin:
            self._better_since = None
            return False
        if self._better_since is None:
            self._better_since = now
        if now - self._better_since < dwell:
            return False
        self._better_since = now
        self._move(better, now)
        return True

    def dwell_left(self, now: float, dwell: float) -> float:
        """Seconds until the next climb if the score holds (the full dwell when it has
        not started qualifying)."""
        if self._better_since is None:
            return dwell
        return max(0.0, dwell - (now - self._better_since))

    def reset(self, rank: int, now: float) -> None:
        self._better_since = None
        self._move(rank, now)

    def _move(self, rank: int, now: float) -> None:
        self.rank = rank
        self.since = now
