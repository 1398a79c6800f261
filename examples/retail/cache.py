"""Cache-aside through redis: a cache that is off or down is a miss, never an error."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from brownout.middleware import BrownoutState

T = TypeVar("T")

logger = logging.getLogger("retail.cache")


class CacheAside:
    """``fetch(key, load)``: the cached value, or ``load()`` stored for next time.

    Reads skip redis while ``cache_read`` is off, writes while ``cache_write`` is off, and
    a redis error (an open breaker included: it is a ``redis.ConnectionError``) falls
    through to ``load``. The result says where the value came from.
    """

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.client = client
        self.ttl = ttl_seconds

    def fetch(self, key: str, load: Callable[[], T], state: BrownoutState | None) -> tuple[T, str]:
        """``(value, source)``; source is ``cache``, ``database``, or ``database (cache
        unavailable)`` / ``database (cache off)``."""
        source = "database"
        if state is not None and not state.enabled("cache_read"):
            source = "database (cache off)"
        else:
            try:
                cached = self.client.get(key)
            except redis.RedisError:
                cached = None
                source = "database (cache unavailable)"
            if cached is not None:
                value: T = json.loads(cached)
                return value, "cache"
        value = load()
        if state is None or state.enabled("cache_write"):
            try:
                self.client.set(key, json.dumps(value), ex=self.ttl)
            except redis.RedisError:
                logger.debug("cache write skipped: redis unavailable")
        return value, source

    def forget(self, *keys: str) -> None:
        """Drop stale entries after a write; a cache that is down holds nothing fresher."""
        try:
            self.client.delete(*keys)
        except redis.RedisError:
            logger.debug("cache invalidation skipped: redis unavailable")


def query_key(prefix: str, **parts: Any) -> str:
    """A bounded key for a query: the parameters hashed, never the raw user text."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
    return f"{prefix}:{digest}"
