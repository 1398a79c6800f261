"""Where the retail service finds its dependencies, read from ``RETAIL_*`` variables.

Every URL here may carry credentials; they go to the clients only, never into responses,
logs or breaker names (the instrumentations name breakers without them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from brownout import BreakerConfig
from brownout.settings import BrownoutSettings


@dataclass(frozen=True)
class RetailConfig:
    database_url: str = "sqlite:///retail.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    s3_endpoint: str | None = None
    """``None``: AWS's own endpoint for the region."""
    s3_bucket: str = "retail-images"
    s3_region: str = "us-east-1"
    openai_base_url: str | None = None
    """``None``: the OpenAI API."""
    openai_api_key: str = "unset"
    openai_model: str = "gpt-4o-mini"
    admin_api_key: str | None = None
    metrics_path: str | None = "/metrics"
    seed_products: int = 200
    """Products created at startup when the catalogue is empty."""
    cache_ttl_seconds: int = 30
    timeout_seconds: float = 2.0
    """Connect and read timeout of every client: a dependency that hangs must fail fast
    enough for its breaker to see it."""
    import_chunk: int = 100
    """Rows per transaction for bulk imports at OPTIMAL; scaled by the level's batch
    multiplier."""
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    brownout: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for :meth:`BrownoutSettings.load` (``health``, ``middleware``)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: Any) -> RetailConfig:
        """``RETAIL_DATABASE_URL``, ``RETAIL_REDIS_URL``, ``RETAIL_S3_ENDPOINT``,
        ``RETAIL_S3_BUCKET``, ``RETAIL_S3_REGION``, ``RETAIL_OPENAI_BASE_URL``,
        ``RETAIL_OPENAI_API_KEY`` (or ``OPENAI_API_KEY``), ``RETAIL_OPENAI_MODEL``,
        ``RETAIL_ADMIN_API_KEY``; brownout itself reads ``BROWNOUT_*``."""
        values: dict[str, Any] = {}
        names = {
            "database_url": "RETAIL_DATABASE_URL",
            "redis_url": "RETAIL_REDIS_URL",
            "s3_endpoint": "RETAIL_S3_ENDPOINT",
            "s3_bucket": "RETAIL_S3_BUCKET",
            "s3_region": "RETAIL_S3_REGION",
            "openai_base_url": "RETAIL_OPENAI_BASE_URL",
            "openai_model": "RETAIL_OPENAI_MODEL",
            "admin_api_key": "RETAIL_ADMIN_API_KEY",
        }
        for attribute, variable in names.items():
            if environ.get(variable):
                values[attribute] = environ[variable]
        key = environ.get("RETAIL_OPENAI_API_KEY") or environ.get("OPENAI_API_KEY")
        if key:
            values["openai_api_key"] = key
        values.update(overrides)
        return cls(**values)

    def settings(self) -> BrownoutSettings:
        """brownout's settings: ``brownout`` over the environment, plus the admin key and
        metrics path of this config."""
        values: dict[str, Any] = {key: dict(value) for key, value in self.brownout.items()}
        middleware = values.setdefault("middleware", {})
        if self.admin_api_key is not None:
            middleware.setdefault("admin_api_key", self.admin_api_key)
        middleware.setdefault("metrics_path", self.metrics_path)
        return BrownoutSettings.load(**values)
