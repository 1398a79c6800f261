"""The OpenTelemetry instrumentor shape every client instrumentation shares."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from brownout.instrumentation.options import InstrumentationOptions
from brownout.telemetry import enable_metrics


class BreakerInstrumentor(BaseInstrumentor, abc.ABC):  # type: ignore[misc]
    """Parses the shared options, turns breaker metrics on, then lets the client module
    install its wrappers. Subclasses implement ``_install`` and ``_remove``."""

    default_component: ClassVar[str] = "external"
    extra_options: ClassVar[frozenset[str]] = frozenset()
    """Client-specific ``instrument()`` keywords, passed to ``_install``."""

    options: InstrumentationOptions

    def _instrument(self, **kwargs: Any) -> None:
        self.options = InstrumentationOptions.from_kwargs(kwargs, self.extra_options)
        enable_metrics(self.options.meter_provider, self.options.registry)
        extras = {name: kwargs[name] for name in self.extra_options if name in kwargs}
        self._install(self.options, **extras)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._remove()

    @property
    def component(self) -> str:
        return self.options.component or self.default_component

    @abc.abstractmethod
    def _install(self, options: InstrumentationOptions, **extras: Any) -> None: ...

    @abc.abstractmethod
    def _remove(self) -> None: ...
