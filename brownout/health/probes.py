"""Active probes: small checks that ask a down dependency whether it answers again.

A probe raises (or returns ``False``) when the dependency does not answer. The factories
take the client or engine the service already has; the recovery loop runs probes inside
``brownout.breaker.probing()``, so an instrumented client reaches the dependency even while
its breaker is open.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Probe:
    component: str
    check: Callable[[], Any]
    """Called with no arguments; raises or returns ``False`` when the dependency is down.
    An ``async def`` (or ``is_async=True``) check is awaited."""
    kind: str = "custom"
    """``redis``, ``sqlalchemy``, ``s3``, ``openai`` or ``custom``; settings can turn each
    kind off (``health.probes.kinds``)."""
    name: str = ""
    breakers: tuple[str, ...] = ()
    """The breakers a success vouches for; empty means every breaker of the component."""
    is_async: bool = field(default=False)

    def __post_init__(self) -> None:
        if not callable(self.check):
            raise TypeError(f"probe check for {self.component!r} must be callable")
        if not self.is_async and inspect.iscoroutinefunction(self.check):
            object.__setattr__(self, "is_async", True)
        if not self.name:
            object.__setattr__(self, "name", f"{self.kind}:{self.component}")


def _is_async_client(client: object) -> bool:
    module = type(client).__module__
    return ".asyncio" in module or type(client).__name__.startswith("Async")


def redis_ping(client: Any, *, component: str = "cache", breakers: tuple[str, ...] = ()) -> Probe:
    """``PING`` through a ``redis.Redis`` or ``redis.asyncio.Redis`` client."""
    if _is_async_client(client):

        async def ping_async() -> bool:
            return bool(await client.ping())

        return Probe(component, ping_async, "redis", breakers=breakers, is_async=True)

    def ping() -> bool:
        return bool(client.ping())

    return Probe(component, ping, "redis", breakers=breakers)


def sqlalchemy_select_one(
    engine: Any, *, component: str = "database", breakers: tuple[str, ...] = ()
) -> Probe:
    """``SELECT 1`` on a SQLAlchemy ``Engine`` or ``AsyncEngine``."""
    from sqlalchemy import text  # noqa: PLC0415 - sqlalchemy is an optional dependency

    statement = text("SELECT 1")
    if hasattr(engine, "sync_engine"):

        async def select_async() -> bool:
            async with engine.connect() as connection:
                return (await connection.execute(statement)).scalar() == 1  # type: ignore[no-any-return]

        return Probe(component, select_async, "sqlalchemy", breakers=breakers, is_async=True)

    def select() -> bool:
        with engine.connect() as connection:
            return connection.execute(statement).scalar() == 1  # type: ignore[no-any-return]

    return Probe(component, select, "sqlalchemy", breakers=breakers)


def s3_head_bucket(
    client: Any, bucket: str, *, component: str = "s3", breakers: tuple[str, ...] = ()
) -> Probe:
    """``HeadBucket`` through a boto3/botocore S3 client."""

    def head() -> None:
        client.head_bucket(Bucket=bucket)

    return Probe(component, head, "s3", breakers=breakers)


def openai_models_list(
    client: Any, *, component: str = "openai", breakers: tuple[str, ...] = ()
) -> Probe:
    """``models.list`` through an ``OpenAI`` or ``AsyncOpenAI`` client."""
    if _is_async_client(client):

        async def list_async() -> None:
            await client.models.list()

        return Probe(component, list_async, "openai", breakers=breakers, is_async=True)

    def list_models() -> None:
        client.models.list()

    return Probe(component, list_models, "openai", breakers=breakers)
