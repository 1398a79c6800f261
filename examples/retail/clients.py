"""The four clients the service talks through, built once from its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3  # type: ignore[import-untyped]
import openai
import redis
import sqlalchemy
from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]
from sqlalchemy.engine import Engine

from examples.retail.config import RetailConfig


@dataclass
class Clients:
    engine: Engine
    cache: redis.Redis
    s3: Any
    ai: openai.OpenAI

    @classmethod
    def connect(cls, config: RetailConfig) -> Clients:
        """Build the clients; none of them connects before its first call."""
        timeout = config.timeout_seconds
        engine_options: dict[str, Any] = {"pool_pre_ping": False}
        if config.database_url.startswith("sqlite"):
            # A busy SQLite file answers "database is locked" after this long, not 5 s.
            engine_options["connect_args"] = {"timeout": timeout, "check_same_thread": False}
        else:
            engine_options["pool_timeout"] = timeout
        engine = sqlalchemy.create_engine(config.database_url, **engine_options)
        cache = redis.Redis.from_url(
            config.redis_url,
            socket_timeout=timeout / 4,
            socket_connect_timeout=timeout / 4,
            retry=None,
        )
        s3 = boto3.session.Session().client(
            "s3",
            endpoint_url=config.s3_endpoint,
            region_name=config.s3_region,
            aws_access_key_id="retail",
            aws_secret_access_key="retail-secret",
            config=BotoConfig(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"total_max_attempts": 1},
            ),
        )
        ai = openai.OpenAI(
            base_url=config.openai_base_url,
            api_key=config.openai_api_key,
            timeout=timeout * 2,
            # One attempt: the breaker decides when to try again, not a retry loop that
            # holds a request for seconds while the API rate-limits.
            max_retries=0,
        )
        return cls(engine, cache, s3, ai)

    def close(self) -> None:
        self.cache.close()
        self.s3.close()
        self.ai.close()
        self.engine.dispose()
