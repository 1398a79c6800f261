"""The dashboard query test runs the retail example against the demo's real dependencies."""

from tests.demo.conftest import (  # noqa: F401 - fixtures, found by name
    openai_server,
    redis_process,
    retail_config,
    s3_url,
)
