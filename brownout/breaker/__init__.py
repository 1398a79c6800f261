"""Circuit breakers: config, state machine, sliding windows, events and registry."""

from brownout.breaker.breaker import Breaker, Clock, RandomSource, probing
from brownout.breaker.config import BreakerConfig
from brownout.breaker.errors import CircuitOpenError
from brownout.breaker.events import Listener, Transition
from brownout.breaker.latency import DURATION_BOUNDARIES, LatencyHistogram, OperationStats
from brownout.breaker.outcome import Outcome
from brownout.breaker.registry import BreakerRegistry, breakers
from brownout.breaker.state import BreakerState

__all__ = [
    "DURATION_BOUNDARIES",
    "Breaker",
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerState",
    "CircuitOpenError",
    "Clock",
    "LatencyHistogram",
    "Listener",
    "OperationStats",
    "Outcome",
    "RandomSource",
    "Transition",
    "breakers",
    "probing",
]
