"""Fixtures shared by the client instrumentation tests."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from brownout import BreakerRegistry
from brownout.testing import FakeClock, FixedRandom
from tests.instrumentation.faultproxy import FaultProxy
from tests.servers import free_port

ProxyFactory = Callable[[str, int], FaultProxy]
Instrumentor = TypeVar("Instrumentor", bound=BaseInstrumentor)


@contextlib.contextmanager
def installed(instrumentor: Instrumentor, **defaults: Any) -> Iterator[Callable[..., Instrumentor]]:
    """``install(**options)`` instruments with ``defaults`` under ``options``; whatever
    was installed is removed on exit, so no wrapper leaks into other tests."""

    def install(**options: Any) -> Instrumentor:
        instrumentor.instrument(**{**defaults, **options})
        return instrumentor

    try:
        yield install
    finally:
        instrumentor.uninstrument()


@contextlib.contextmanager
def side_by_side(
    official: BaseInstrumentor,
    ours: BaseInstrumentor,
    *,
    official_first: bool,
    tracer_provider: TracerProvider,
    registry: BreakerRegistry,
) -> Iterator[None]:
    """An official OpenTelemetry instrumentation and ours, installed in the order given;
    whichever is still installed on exit is removed."""
    steps = [
        lambda: official.instrument(tracer_provider=tracer_provider),
        lambda: ours.instrument(registry=registry),
    ]
    for step in steps if official_first else steps[::-1]:
        step()
    try:
        yield
    finally:
        for instrumentor in (official, ours):
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()


@pytest.fixture
def fault_proxy() -> Iterator[ProxyFactory]:
    """``fault_proxy(host, port)`` starts a :class:`FaultProxy` in front of a server;
    every proxy started is closed at teardown."""
    proxies: list[FaultProxy] = []

    def start(host: str, port: int) -> FaultProxy:
        proxy = FaultProxy(host, port).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def registry(clock: FakeClock) -> BreakerRegistry:
    """Breakers on the fake clock, without jitter; modules may define their own."""
    return BreakerRegistry(clock=clock, random_source=FixedRandom(0.5))


@pytest.fixture(scope="session")
def moto_port() -> Iterator[int]:
    """moto in server mode: a real HTTP endpoint serving S3, SQS and the rest."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield port
    server.stop()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The spans an official OpenTelemetry instrumentation finished, for coexistence tests."""
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(spans: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider
