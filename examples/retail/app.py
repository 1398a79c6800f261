"""The retail inventory API: a FastAPI service using PostgreSQL or SQLite, redis, S3 and
OpenAI the way real services do, kept useful by brownout while they fail.

    uvicorn --factory examples.retail.app:app_from_env
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from starlette.concurrency import run_in_threadpool

from brownout import BreakerRegistry
from brownout.health import (
    HealthService,
    SnapshotBoard,
    openai_models_list,
    redis_ping,
    s3_head_bucket,
    sqlalchemy_select_one,
)
from brownout.middleware import BrownoutMiddleware
from examples.retail import problems
from examples.retail.api import bulk, catalog, images, orders
from examples.retail.config import RetailConfig
from examples.retail.instrumentation import Instrumentation
from examples.retail.service import Retail


def create_app(config: RetailConfig) -> FastAPI:
    settings = config.settings()
    service = Retail.build(config)
    clients = service.clients
    registry = BreakerRegistry(default_config=config.breaker)
    board = SnapshotBoard(settings.health.feature_matrix())
    meter_provider, metrics_text, stop_metrics = _metrics(settings.middleware.metrics_path)
    health = HealthService(
        settings,
        probes=[
            redis_ping(clients.cache),
            sqlalchemy_select_one(clients.engine),
            s3_head_bucket(clients.s3, config.s3_bucket),
            openai_models_list(clients.ai),
        ],
        registry=registry,
        board=board,
        meter_provider=meter_provider,
    )
    instrumentation = Instrumentation(registry, board, meter_provider, config.breaker)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        instrumentation.install(clients)
        try:
            await run_in_threadpool(service.store.create_schema, config.seed_products)
            await run_in_threadpool(_prepare_bucket, service)
            yield
        finally:
            instrumentation.remove()
            health.close()
            clients.close()
            stop_metrics()

    app = FastAPI(title="Retail inventory (brownout example)", lifespan=lifespan)
    app.state.retail = service
    app.state.health = health
    app.state.registry = registry
    # Batch routes are first: /products/export.csv must not be read as a product id.
    for router in (bulk.router, catalog.router, orders.router, images.router):
        app.include_router(router)
    problems.install(app)
    app.add_middleware(
        BrownoutMiddleware,
        settings=settings.middleware,
        control=health,
        registry=registry,
        meter_provider=meter_provider,
        metrics_text=metrics_text,
    )
    return app


def _prepare_bucket(service: Retail) -> None:
    try:
        service.images.ensure_bucket()
    except Exception:
        import logging  # noqa: PLC0415

        logging.getLogger("retail").warning("image bucket not reachable at startup")


def _metrics(
    path: str | None,
) -> tuple[MeterProvider, Callable[[], bytes] | None, Callable[[], None]]:
    """A meter provider, and Prometheus text for ``path`` when it is set."""
    if path is None:
        provider = MeterProvider()
        return provider, None, provider.shutdown
    from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: PLC0415
    from prometheus_client import REGISTRY, generate_latest  # noqa: PLC0415

    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])

    def text() -> bytes:
        return generate_latest(REGISTRY)

    return provider, text, provider.shutdown


def app_from_env() -> FastAPI:
    """The app configured from ``RETAIL_*`` (and ``BROWNOUT_*``) variables."""
    return create_app(RetailConfig.from_env())
