"""The states a breaker can be in."""

from __future__ import annotations

import enum


class BreakerState(enum.Enum):
    """Where a breaker stands.

    The first three are driven by traffic; the last three are set by an operator and stay
    until :meth:`Breaker.reset` (or another forced state) replaces them.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"

    @property
    def is_manual(self) -> bool:
        return self in _MANUAL

    @classmethod
    def parse(cls, value: str | BreakerState) -> BreakerState:
        """Accept a state or its name in any case (``"open"``, ``"FORCED_OPEN"``)."""
        if isinstance(value, BreakerState):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            choices = ", ".join(state.value for state in cls)
            raise ValueError(f"unknown breaker state {value!r}; use one of: {choices}") from None


_MANUAL = frozenset({BreakerState.FORCED_OPEN, BreakerState.DISABLED, BreakerState.METRICS_ONLY})
