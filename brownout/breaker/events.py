"""What a breaker tells the rest of the process when it changes state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from brownout.breaker.state import BreakerState

logger = logging.getLogger("brownout.breaker")


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of one breaker."""

    breaker: str
    component: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    """The breaker's clock (monotonic seconds) when it happened."""
    reason: str
    retry_after: float | None = None
    """Seconds until the breaker lets a probe through, when it just opened."""


Listener = Callable[[Transition], None]


def notify(listeners: Iterable[Listener], event: Transition) -> None:
    """Call every listener; one that raises is logged and never breaks the call that
    caused the transition."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            logger.exception(
                "breaker listener %r failed on %s -> %s",
                listener,
                event.from_state.value,
                event.to_state.value,
            )
