"""How a breaker decides: windows, thresholds, timings and outcome classification."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ExceptionTypes = tuple[type[BaseException], ...]
ExceptionPredicate = Callable[[BaseException], bool]
ResultPredicate = Callable[[Any], bool]

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Percent = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]

# Never failures: the caller gave up or the process is stopping; the dependency said nothing.
CANCELLATION: ExceptionTypes = (
    asyncio.CancelledError,
    KeyboardInterrupt,
    GeneratorExit,
    SystemExit,
)


class BreakerConfig(BaseModel):
    """Everything a breaker needs to decide, validated once, frozen afterwards.

    Defaults follow DESIGN.md: a 10 s window of one-second buckets, trip at a 50% failure
    rate or 80% slow-call rate over at least 10 calls, or after 5 consecutive failures;
    open for 10 s doubling on each re-open up to 300 s; three half-open probes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    window: Literal["time", "count"] = "time"
    """``time``: the last ``window_size`` buckets of ``bucket_seconds``; ``count``: the last
    ``window_size`` calls."""
    window_size: Annotated[int, Field(ge=1, le=10_000)] = 10
    bucket_seconds: Seconds = 1.0

    failure_rate_threshold: Percent = 50.0
    slow_call_rate_threshold: Percent = 80.0
    slow_call_seconds: Seconds = 5.0
    minimum_calls: Annotated[int, Field(ge=1)] = 10
    consecutive_failures: Annotated[int, Field(ge=0)] = 5
    """Trip after this many failures in a row whatever the window says (0 turns it off), so
    a rarely called dependency trips too."""

    open_seconds: Seconds = 10.0
    open_max_seconds: Seconds = 300.0
    backoff_multiplier: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 2.0
    jitter: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.1
    """Each open period is scaled by a random factor in ``[1 - jitter, 1 + jitter]`` so
    replicas don't probe a recovering dependency in lockstep."""

    half_open_permits: Annotated[int, Field(ge=1, le=10_000)] = 3
    half_open_timeout_seconds: Seconds = 30.0
    """Back to open when the half-open probes have not all answered within this time."""

    record_exceptions: ExceptionTypes = (Exception,)
    ignore_exceptions: ExceptionTypes = ()
    record_when: ExceptionPredicate | None = None
    ignore_when: ExceptionPredicate | None = None
    failure_result: ResultPredicate | None = None
    """Called with a call's return value; ``True`` counts that result as a failure."""

    @property
    def _never_failures(self) -> ExceptionTypes:
        return (*CANCELLATION, *self.ignore_exceptions)

    @model_validator(mode="after")
    def _check_relations(self) -> BreakerConfig:
        if self.open_max_seconds < self.open_seconds:
            raise ValueError(
                f"open_max_seconds ({self.open_max_seconds}) must be >= open_seconds "
                f"({self.open_seconds}); raise open_max_seconds or lower open_seconds"
            )
        for field in ("record_exceptions", "ignore_exceptions"):
            for kind in getattr(self, field):
                if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                    raise ValueError(f"{field} must hold exception classes, got {kind!r}")
        return self

    def classify_error(self, error: BaseException) -> bool | None:
        """``True``: a failure; ``None``: ignored. Ignore wins over record, subclasses too."""
        if isinstance(error, self._never_failures):
            return None
        if self.ignore_when is not None and self.ignore_when(error):
            return None
        if isinstance(error, self.record_exceptions):
            return True
        if self.record_when is not None and self.record_when(error):
            return True
        return None
