"""What a guarded call's result means for its breaker."""

from __future__ import annotations

import enum


class Outcome(enum.IntEnum):
    """How one call is counted. Values index the breaker's local counters."""

    SUCCESS = 0
    FAILURE = 1
    SLOW = 2  # a call that answered, but slower than the slow-call threshold
    REJECTED = 3
    IGNORED = 4  # counted as neither success nor failure; the permit is released

    @property
    def label(self) -> str:
        return self.name.lower()
