"""How failures spread and repeat: the impact matrix, simultaneous outages and flapping."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from brownout.settings import CascadeSettings

# Open events kept per component: enough for any flap threshold, bounded under any outage.
_OPENS_KEPT = 64


def apply_impact(
    scores: Mapping[str, float], impact: Mapping[str, Mapping[str, float]]
) -> tuple[dict[str, float], dict[str, str]]:
    """Lower each target by ``share`` of what each source lost (sources' own scores, so
    impacts do not chain). Returns the new scores and, per lowered target, its worst source.
    """
    result = dict(scores)
    blamed: dict[str, str] = {}
    worst: dict[str, float] = {}
    for source, targets in impact.items():
        own = scores.get(source)
        if own is None or own >= 100.0:
            continue
        lost = 1.0 - own / 100.0
        for target, share in targets.items():
            if target not in result or share <= 0:
                continue
            factor = share * lost
            result[target] *= 1.0 - factor
            if factor > worst.get(target, 0.0):
                worst[target] = factor
                blamed[target] = source
    return result, blamed


def simultaneous(starts: Mapping[str, float], window: float, minimum: int) -> tuple[str, ...]:
    """The largest group of components whose current outages began within ``window`` of
    each other, when it has at least ``minimum`` members."""
    ordered = sorted(starts.items(), key=lambda item: item[1])
    best: list[tuple[str, float]] = []
    first = 0
    for last in range(len(ordered)):
        while ordered[last][1] - ordered[first][1] > window:
            first += 1
        if last - first + 1 > len(best):
            best = ordered[first : last + 1]
    if len(best) < minimum:
        return ()
    return tuple(sorted(name for name, _ in best))


class FailureLog:
    """When each component's breakers opened; answers which components flap and which
    fails most often."""

    __slots__ = ("_opens", "_totals", "settings")

    def __init__(self, settings: CascadeSettings) -> None:
        self.settings = settings
        self._opens: dict[str, deque[float]] = {}
        self._totals: dict[str, int] = {}

    def opened(self, component: str, at: float) -> None:
        opens = self._opens.get(component)
        if opens is None:
            opens = self._opens.setdefault(component, deque(maxlen=_OPENS_KEPT))
        opens.append(at)
        self._totals[component] = self._totals.get(component, 0) + 1

    def flapping(self, now: float) -> tuple[str, ...]:
        since = now - self.settings.flap_window_seconds
        needed = self.settings.flap_opens
        return tuple(
            sorted(
                component
                for component, opens in list(self._opens.items())
                if len(opens) >= needed and sum(1 for at in opens if at >= since) >= needed
            )
        )

    def dwell(self, base: float, now: float) -> tuple[float, tuple[str, ...]]:
        """The recovery dwell: ``base``, lengthened while any component flaps."""
        flapping = self.flapping(now) if self._opens else ()
        if not flapping:
            return base, ()
        settings = self.settings
        return min(base * settings.flap_dwell_multiplier, settings.max_dwell_seconds), flapping

    def totals(self) -> dict[str, int]:
        return dict(self._totals)

    def most_frequent(self) -> str | None:
        """The component whose breakers opened most often (ties: alphabetical)."""
        if not self._totals:
            return None
        return min(self._totals.items(), key=lambda item: (-item[1], item[0]))[0]
