"""brownout: keep a service useful while its dependencies fail.

The names here are the whole everyday API; the subpackages hold the rest:
``brownout.instrumentation`` (breakers around clients), ``brownout.health`` (scores and
levels), ``brownout.middleware`` (the ASGI edge), ``brownout.telemetry`` and
``brownout.settings``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from brownout.breaker import (
    Breaker,
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitOpenError,
    Outcome,
    Transition,
    breakers,
    probing,
)
from brownout.features import FeatureDisabledError, FeatureMatrix
from brownout.levels import Level
from brownout.telemetry import enable_metrics

if TYPE_CHECKING:
    from brownout.health import HealthService
    from brownout.instrumentation import instrument
    from brownout.middleware import BrownoutMiddleware, enabled, features

__all__ = [
    "Breaker",
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerState",
    "BrownoutMiddleware",
    "CircuitOpenError",
    "FeatureDisabledError",
    "FeatureMatrix",
    "HealthService",
    "Level",
    "Outcome",
    "Transition",
    "breaker",
    "breakers",
    "enable_metrics",
    "enabled",
    "features",
    "instrument",
    "probing",
]

# Imported on first use: the ASGI and instrumentation layers pull in Starlette, wrapt and
# OpenTelemetry's instrumentation package, which code that only needs a breaker never uses.
_LAZY = {
    "BrownoutMiddleware": "brownout.middleware",
    "enabled": "brownout.middleware",
    "features": "brownout.middleware",
    "HealthService": "brownout.health",
    "instrument": "brownout.instrumentation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brownout' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def breaker(
    name: str,
    *,
    component: str = "external",
    config: BreakerConfig | None = None,
) -> Breaker:
    """The process-wide breaker called ``name``, created on first use.

    It guards a function as a decorator, a block as a context manager::

        @brownout.breaker("payments")
        async def charge(order): ...
    """
    return breakers.breaker(name, component=component, config=config)
