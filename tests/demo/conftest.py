"""The retail example against real local servers: a private redis-server, moto's S3 server
and the demo's OpenAI-compatible server; the app runs its lifespan like under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from moto.server import ThreadedMotoServer

from brownout import BreakerConfig
from examples.demo.openai_server import OpenAIStandIn
from examples.retail import RetailConfig, create_app
from tests.servers import RedisServer, free_port, missing, redis_binary, wait_for_port

ADMIN_KEY = "retail-test-admin-key-0123456789"
OPENAI_KEY = "sk-retail-test-secret-4242"


@pytest.fixture
def redis_process() -> Iterator[RedisServer]:
    binary = redis_binary()
    if binary is None:
        missing("redis-server is not installed")
    server = RedisServer(binary)  # type: ignore[arg-type]
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    wait_for_port("127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def openai_server() -> Iterator[OpenAIStandIn]:
    server = OpenAIStandIn()
    server.start()
    yield server
    server.close()


@pytest.fixture
def retail_config(
    tmp_path: Path, redis_process: RedisServer, s3_url: str, openai_server: OpenAIStandIn
) -> RetailConfig:
    return RetailConfig(
        database_url=f"sqlite:///{tmp_path / 'retail.db'}",
        redis_url=redis_process.url,
        s3_endpoint=s3_url,
        s3_bucket=f"retail-{tmp_path.name.lower().replace('_', '-')}"[:60],
        openai_base_url=openai_server.base_url,
        openai_api_key=OPENAI_KEY,
        openai_model="demo-model",
        admin_api_key=ADMIN_KEY,
        metrics_path=None,
        seed_products=30,
        timeout_seconds=1.0,
        import_chunk=4,
        # Trip after three failures and stay open for the whole test.
        breaker=BreakerConfig(consecutive_failures=3, open_seconds=60, open_max_seconds=60),
        brownout={"health": {"smoothing_seconds": 0}, "middleware": {"retry_jitter": 0}},
    )


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Run an ASGI app's lifespan (startup before the block, shutdown after), as a server
    does; httpx's ASGITransport does not."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {started.get('message')}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


Client = Callable[
    [RetailConfig], contextlib.AbstractAsyncContextManager[tuple[FastAPI, httpx.AsyncClient]]
]


@pytest.fixture
def retail_app() -> Client:
    """``async with retail_app(config) as (app, client)``: the app started, and a client."""

    @contextlib.asynccontextmanager
    async def start(config: RetailConfig) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        app = create_app(config)
        async with lifespan(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://retail") as client:
                yield app, client

    return start
