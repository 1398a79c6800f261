"""``opentelemetry-instrument`` finds our instrumentors through the package's entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import brownout.instrumentation
from brownout.breaker import BreakerRegistry
from tests.servers import RedisServer

APP = """
import json, sys

import redis

from brownout.breaker import breakers
from brownout.instrumentation.wrapping import is_wrapped

client = redis.Redis(port=int(sys.argv[1]))
client.set("k", "v")
print(json.dumps({
    "wrapped": is_wrapped(redis.Redis, "execute_command"),
    "breakers": [breaker.name for breaker in breakers],
}))
"""

BIN = Path(sys.executable).parent


def _run_instrumented(tmp_path: Path, port: int, **env: str) -> dict[str, Any]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    environment = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        **env,
    }
    result = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), "python", str(app), str(port)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return output


def test_entry_points_are_registered() -> None:
    names = {point.name for point in entry_points(group="opentelemetry_instrumentor")}
    assert {"brownout_redis", "brownout_sqlalchemy"} <= names


def test_opentelemetry_instrument_installs_the_redis_breakers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    output = _run_instrumented(tmp_path, redis_server.port)
    assert output["wrapped"] is True
    assert f"redis://localhost:{redis_server.port}/0" in output["breakers"]


def test_disabled_instrumentations_leave_redis_alone(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    output = _run_instrumented(
        tmp_path, redis_server.port, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="brownout_redis"
    )
    assert output == {"wrapped": False, "breakers": []}


def test_instrument_guards_every_installed_client() -> None:
    registry = BreakerRegistry()
    instrumentors = brownout.instrumentation.instrument(registry=registry, cache=True)
    try:
        kinds = {type(instrumentor).__name__ for instrumentor in instrumentors}
        assert {"RedisBreakerInstrumentor", "SQLAlchemyBreakerInstrumentor"} <= kinds
        assert all(instrumentor.is_instrumented_by_opentelemetry for instrumentor in instrumentors)
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()


def test_instrument_rejects_options_no_client_accepts() -> None:
    with pytest.raises(TypeError, match=r"unknown instrument\(\) option.*'cahce'"):
        brownout.instrumentation.instrument(cahce=True)
