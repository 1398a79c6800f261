"""Circuit breakers around real clients, installed the OpenTelemetry way.

Each client module holds one ``BaseInstrumentor``; ``opentelemetry-instrument`` finds them
through the ``opentelemetry_instrumentor`` entry points (``brownout_redis``,
``brownout_sqlalchemy``, ``brownout_botocore``, ``brownout_openai``).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from brownout.instrumentation.base import BreakerInstrumentor
from brownout.instrumentation.options import InstrumentationOptions

__all__ = ["BreakerInstrumentor", "instrument"]

logger = logging.getLogger("brownout.instrumentation")

CLIENTS: tuple[tuple[str, str], ...] = (
    ("brownout.instrumentation.redis", "RedisBreakerInstrumentor"),
    ("brownout.instrumentation.sqlalchemy", "SQLAlchemyBreakerInstrumentor"),
    ("brownout.instrumentation.botocore", "BotocoreBreakerInstrumentor"),
    ("brownout.instrumentation.openai", "OpenAIBreakerInstrumentor"),
)
"""Every client instrumentation, imported only when :func:`instrument` runs."""


def instrument(**options: Any) -> list[BreakerInstrumentor]:
    """Put breakers around every client library that is installed (redis, SQLAlchemy,
    botocore, openai) and return their instrumentors (``uninstrument()`` each to undo).

    ``options`` are the shared ones (``registry``, ``meter_provider``, ``component``,
    ``config``, ``board``, ``enforce_features``) plus any client-specific keyword
    (``cache=`` for redis, ``engine=`` / ``engines=`` for SQLAlchemy...), which goes only to
    the instrumentations that accept it. Libraries that are not installed are skipped.
    """
    shared = set(InstrumentationOptions.__dataclass_fields__) | {"tracer_provider"}
    loaded = [kind for kind in map(_load, CLIENTS) if kind is not None]
    accepted = shared.union(*(kind.extra_options for kind in loaded))
    unknown = set(options) - accepted
    if unknown:
        raise TypeError(
            f"unknown instrument() option(s) {sorted(unknown)}; accepted by the installed "
            f"client instrumentations: {', '.join(sorted(accepted))}"
        )
    instrumentors = []
    for kind in loaded:
        instrumentor = kind()
        mine = {k: v for k, v in options.items() if k in shared or k in kind.extra_options}
        instrumentor.instrument(**mine)
        instrumentors.append(instrumentor)
    return instrumentors


def _load(client: tuple[str, str]) -> type[BreakerInstrumentor] | None:
    module_name, class_name = client
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        # The client library (or its instrumentation module) is not installed: nothing to
        # guard, which is not an error.
        logger.debug("skipping %s: %s", module_name, error)
        return None
    kind: type[BreakerInstrumentor] = getattr(module, class_name)
    return kind
