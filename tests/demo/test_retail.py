"""The retail example's degraded behaviour, against real local dependencies."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from brownout import Level
from examples.demo.openai_server import OpenAIStandIn
from examples.retail import RetailConfig
from examples.retail.store import orders, products
from tests.demo.conftest import ADMIN_KEY, OPENAI_KEY, Client
from tests.servers import RedisServer, free_port

ADMIN = {"X-API-Key": ADMIN_KEY}


async def force(client, level: str) -> None:  # type: ignore[no-untyped-def]
    body = {"level": level, "ttl": 300, "reason": "test"}
    response = await client.post("/brownout/admin/level", headers=ADMIN, json=body)
    assert response.status_code == 200, response.text


async def test_healthy_service_serves_everything_with_ai_and_cache(
    retail_app: Client, retail_config: RetailConfig
) -> None:
    async with retail_app(retail_config) as (_, client):
        first = await client.get("/products", params={"limit": 5})
        second = await client.get("/products", params={"limit": 5})
        assert first.status_code == second.status_code == 200
        assert first.json()["source"] == "database"
        assert second.json()["source"] == "cache"
        detail = await client.get("/products/3")
        assert detail.json()["ai"]["status"] == "ok"
        assert "brownout-degraded" not in detail.headers


async def test_cache_down_serves_reads_from_the_database_degraded(
    retail_app: Client, retail_config: RetailConfig, redis_process: RedisServer
) -> None:
    async with retail_app(retail_config) as (app, client):
        assert (await client.get("/products")).status_code == 200
        redis_process.kill()
        for _ in range(3):  # the cache errors trip its breaker; every one is still served
            response = await client.get("/products", params={"limit": 3})
            assert response.status_code == 200
            assert response.json()["source"] == "database (cache unavailable)"
        snapshot = app.state.health.aggregator.evaluate()
        assert snapshot.level is Level.DEGRADED
        response = await client.get("/products", params={"limit": 3})
        assert response.status_code == 200
        assert response.headers["brownout-degraded"] == "cache_write"
        assert len(response.json()["items"]) == 3
        assert response.json()["source"] == "database (cache unavailable)"


async def test_write_at_minimal_is_rejected_with_retry_after_and_not_applied(
    retail_app: Client, retail_config: RetailConfig
) -> None:
    async with retail_app(retail_config) as (app, client):
        engine = app.state.retail.clients.engine
        await force(client, "minimal")
        rejected = await client.post("/orders", json={"items": [{"product_id": 1, "quantity": 1}]})
        assert rejected.status_code == 503
        assert int(rejected.headers["retry-after"]) >= 1
        assert rejected.headers["content-type"] == "application/problem+json"
        assert rejected.json()["feature"] == "write"
        stock = await client.post("/products/1/stock", json={"delta": 5})
        assert stock.status_code == 503
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(orders)).scalar() == 0
            before = connection.execute(select(products.c.stock).where(products.c.id == 1))
            assert before.scalar() == (await client.get("/products/1")).json()["product"]["stock"]
        assert (await client.get("/products")).status_code == 200  # reads stay on


async def test_ai_off_serves_the_detail_without_calling_openai(
    retail_app: Client, retail_config: RetailConfig, openai_server: OpenAIStandIn
) -> None:
    async with retail_app(retail_config) as (_, client):
        await force(client, "limited")
        calls = openai_server._server.calls
        response = await client.get("/products/2")
        assert response.status_code == 200
        assert response.json()["ai"] == {"text": None, "status": "off"}
        assert response.json()["product"]["id"] == 2
        assert "ai" in response.headers["brownout-degraded"].split(",")
        assert openai_server._server.calls == calls


async def test_openai_rate_limits_leave_the_ai_part_out(
    retail_app: Client, retail_config: RetailConfig, openai_server: OpenAIStandIn
) -> None:
    async with retail_app(retail_config) as (app, client):
        openai_server.rate_limit(True)
        for _ in range(4):
            response = await client.get("/products/2")
            assert response.status_code == 200
            assert response.json()["ai"] == {"text": None, "status": "unavailable"}
        breakers = {b.component: b.state.value for b in app.state.registry}
        assert breakers["openai"] == "open"


async def test_s3_unreachable_upload_is_a_503_and_changes_nothing(
    retail_app: Client, retail_config: RetailConfig
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    config = RetailConfig(**{**retail_config.__dict__, "s3_endpoint": dead})
    async with retail_app(config) as (app, client):
        response = await client.put(
            "/products/4/image", content=b"\x89PNG-data", headers={"Content-Type": "image/png"}
        )
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["content-type"] == "application/problem+json"
        assert app.state.retail.store.image_key(4) is None


@pytest.mark.parametrize(("level", "chunk", "chunks"), [("optimal", 4, 3), ("limited", 2, 5)])
async def test_bulk_import_chunks_scale_with_the_level(
    retail_app: Client, retail_config: RetailConfig, level: str, chunk: int, chunks: int
) -> None:
    rows = [
        {"sku": f"T-{n}", "name": f"n{n}", "category": "c", "price_cents": 1, "stock": 1}
        for n in range(10)
    ]
    async with retail_app(retail_config) as (_, client):
        if level != "optimal":
            await force(client, level)
        response = await client.post("/products/import", json={"products": rows})
        assert response.status_code == 200, response.text
        assert response.json() == {"written": 10, "chunks": chunks, "chunk_size": chunk}
        exported = await client.get("/products/export.csv")
        assert exported.status_code == 200
        assert exported.text.count("\n") == 1 + retail_config.seed_products + 10


async def test_batch_is_shed_at_emergency(retail_app: Client, retail_config: RetailConfig) -> None:
    async with retail_app(retail_config) as (_, client):
        await force(client, "emergency")
        response = await client.get("/products/export.csv")
        assert response.status_code == 503
        assert response.json()["feature"] in ("batch", "read")


async def test_no_secret_reaches_a_response(
    retail_app: Client, retail_config: RetailConfig
) -> None:
    async with retail_app(retail_config) as (_, client):
        await client.get("/products/1")
        bodies = [
            (await client.get("/brownout/admin/status", headers=ADMIN)).text,
            (await client.get("/health", headers=ADMIN)).text,
            (await client.get("/products/1")).text,
            (await client.get("/openapi.json")).text,
        ]
        for body in bodies:
            assert OPENAI_KEY not in body
            assert "retail-secret" not in body
            assert ADMIN_KEY not in body
        status = json.loads(bodies[0])
        assert {b["component"] for b in status["breakers"]} == {"database", "cache", "openai", "s3"}


async def test_status_command_summarises_the_admin_status(
    retail_app: Client, retail_config: RetailConfig
) -> None:
    from brownout.cli import describe

    async with retail_app(retail_config) as (_, client):
        await force(client, "degraded")
        status = (await client.get("/brownout/admin/status", headers=ADMIN)).json()
        health = (await client.get("/health")).json()
    lines = describe(status).splitlines()
    assert lines[0].startswith("level degraded  score 100")
    assert any(line.split()[0] == "database" and "healthy" in line for line in lines[1:])
    assert describe(health) == "health warn  brownout degradation level"
