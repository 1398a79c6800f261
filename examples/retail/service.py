"""What the handlers use, built once per app and found through ``request.app.state``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from examples.retail.assistant import Assistant
from examples.retail.cache import CacheAside
from examples.retail.clients import Clients
from examples.retail.config import RetailConfig
from examples.retail.images import Images
from examples.retail.store import Store


@dataclass
class Retail:
    config: RetailConfig
    clients: Clients
    store: Store
    cache: CacheAside
    assistant: Assistant
    images: Images

    @classmethod
    def build(cls, config: RetailConfig) -> Retail:
        clients = Clients.connect(config)
        return cls(
            config,
            clients,
            Store(clients.engine),
            CacheAside(clients.cache, config.cache_ttl_seconds),
            Assistant(clients.ai, config.openai_model),
            Images(clients.s3, config.s3_bucket),
        )


def retail(request: Request) -> Retail:
    """FastAPI dependency: the app's :class:`Retail`."""
    service: Retail = request.app.state.retail
    return service
