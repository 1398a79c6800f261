"""The faults the demo injects, each a real failure of a real dependency."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from examples.demo.fault_proxy import FaultProxy
from examples.demo.openai_server import OpenAIStandIn
from examples.demo.redis_process import RedisProcess
from examples.demo.redis_standin import RedisStandIn


@dataclass
class Chaos:
    cache: RedisProcess | RedisStandIn
    openai: OpenAIStandIn
    s3_proxy: FaultProxy
    service_url: str
    admin_key: str
    database_proxy: FaultProxy | None = None
    """In front of PostgreSQL when the demo runs against it; SQLite is slowed inside the
    service process instead (``examples.demo.database_latency``)."""
    active: dict[str, str] = field(default_factory=dict)
    """Dependency -> the fault it suffers now."""

    def kill_cache(self) -> None:
        self.cache.kill()
        self.active["cache"] = "redis killed (connections cut, data lost)"

    def restore_cache(self) -> None:
        if not self.cache.running:
            self.cache.start()
        self.active.pop("cache", None)

    def slow_database(self, seconds: float) -> None:
        if self.database_proxy is not None:
            self.database_proxy.latency(seconds)
        else:
            response = httpx.post(
                f"{self.service_url}/_demo/database-latency",
                params={"seconds": seconds},
                headers={"X-API-Key": self.admin_key},
                timeout=5,
            )
            response.raise_for_status()
        if seconds:
            self.active["database"] = f"+{seconds * 1000:.0f} ms per statement"
        else:
            self.active.pop("database", None)

    def rate_limit_openai(self, on: bool) -> None:
        self.openai.rate_limit(on)
        if on:
            self.active["openai"] = "every call answers 429"
        else:
            self.active.pop("openai", None)

    def hang_s3(self, on: bool) -> None:
        self.s3_proxy.blackhole(on)
        if on:
            self.active["s3"] = "requests swallowed (client timeouts)"
        else:
            self.active.pop("s3", None)

    def restore_all(self) -> None:
        self.restore_cache()
        self.slow_database(0)
        self.rate_limit_openai(False)
        self.hang_s3(False)
