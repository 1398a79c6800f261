"""What every client instrumentation accepts, parsed once from ``instrument(**kwargs)``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.metrics import MeterProvider

from brownout.breaker import BreakerConfig, BreakerRegistry, breakers
from brownout.health.snapshot import SnapshotBoard, board


@dataclass(frozen=True)
class InstrumentationOptions:
    """Options shared by the redis, SQLAlchemy, botocore and OpenAI instrumentations.

    ``config`` replaces the breaker defaults; the client's own outcome classification
    (which errors are failures, which are ignored) stays unless ``config`` sets
    ``record_exceptions`` / ``ignore_exceptions`` / ``record_when`` / ``ignore_when``
    itself. ``enforce_features`` makes clients obey the current level's feature matrix.
    """

    registry: BreakerRegistry = breakers
    meter_provider: MeterProvider | None = None
    component: str | None = None
    config: BreakerConfig | None = None
    board: SnapshotBoard = field(default_factory=lambda: board)
    enforce_features: bool = False

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any], extra: frozenset[str] = frozenset()) -> Any:
        """Split ``kwargs`` into options and client-specific extras; unknown names raise
        ``TypeError`` naming them and the accepted ones."""
        known = set(cls.__dataclass_fields__)
        unknown = set(kwargs) - known - extra - {"tracer_provider"}
        if unknown:
            accepted = ", ".join(sorted(known | extra))
            raise TypeError(
                f"unknown instrument() option(s) {sorted(unknown)}; accepted: {accepted}"
            )
        values = {name: value for name, value in kwargs.items() if name in known}
        if values.get("board") is None:
            values.pop("board", None)
        if values.get("registry") is None:
            values.pop("registry", None)
        return cls(**values)

    def breaker_config(self, classification: Mapping[str, Any]) -> BreakerConfig:
        """The user's config (or the registry default) with the client's classification
        filled in wherever the user did not set their own."""
        base = self.config if self.config is not None else self.registry.default_config
        update = {k: v for k, v in classification.items() if k not in base.model_fields_set}
        return base.model_copy(update=update) if update else base
