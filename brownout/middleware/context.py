"""What a handler learns about the decision: ``request.state.brownout``, ``scope["brownout"]``
and :func:`enabled` (through a context variable)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from brownout.health.snapshot import board
from brownout.levels import Level


@dataclass(frozen=True, slots=True)
class BrownoutState:
    """The decision for one request; shared by every request of a route at one level."""

    level: Level
    off: frozenset[str]
    """Every feature that is off at ``level``."""
    degraded: tuple[str, ...]
    """The features this route can do without that are off (the ``Brownout-Degraded``
    header)."""
    batch_multiplier: float

    def enabled(self, feature: str) -> bool:
        return feature not in self.off


current: ContextVar[BrownoutState | None] = ContextVar("brownout_state", default=None)


def enabled(feature: str) -> bool:
    """Whether ``feature`` is on for the request being handled (outside a request: at the
    level on the process-wide board)::

        if brownout.middleware.enabled("ai"):
            summary = await summarise(text)
    """
    state = current.get()
    if state is None:
        return board.snapshot.enabled(feature)
    return feature not in state.off
