"""Breakers around the service's four clients, installed at startup, removed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.metrics import MeterProvider

from brownout import BreakerConfig, BreakerRegistry
from brownout.health import SnapshotBoard
from brownout.instrumentation import BreakerInstrumentor
from brownout.instrumentation.botocore import BotocoreBreakerInstrumentor
from brownout.instrumentation.openai import OpenAIBreakerInstrumentor
from brownout.instrumentation.redis import RedisBreakerInstrumentor
from brownout.instrumentation.sqlalchemy import SQLAlchemyBreakerInstrumentor
from examples.retail.clients import Clients

# Writing to a database should answer within a second; a slower call counts as slow.
DATABASE_SLOW_SECONDS = 1.0


@dataclass
class Instrumentation:
    registry: BreakerRegistry
    board: SnapshotBoard
    meter_provider: MeterProvider
    config: BreakerConfig
    installed: list[BreakerInstrumentor] = field(default_factory=list)

    def install(self, clients: Clients) -> None:
        shared: dict[str, Any] = {
            "registry": self.registry,
            "board": self.board,
            "meter_provider": self.meter_provider,
            "enforce_features": True,
        }
        database = self.config.model_copy(update={"slow_call_seconds": DATABASE_SLOW_SECONDS})
        steps: list[tuple[BreakerInstrumentor, dict[str, Any]]] = [
            # cache=True: the redis client obeys cache_read / cache_write by itself.
            (RedisBreakerInstrumentor(), {"config": self.config, "cache": True}),
            (SQLAlchemyBreakerInstrumentor(), {"config": database, "engine": clients.engine}),
            (BotocoreBreakerInstrumentor(), {"config": self.config}),
            # The OpenAI client refuses calls while ``ai`` is off (FeatureDisabledError).
            (OpenAIBreakerInstrumentor(), {"config": self.config}),
        ]
        for instrumentor, options in steps:
            instrumentor.instrument(**{**shared, **options})
            self.installed.append(instrumentor)

    def remove(self) -> None:
        while self.installed:
            self.installed.pop().uninstrument()
