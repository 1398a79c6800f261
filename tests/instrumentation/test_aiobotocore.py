"""aiobotocore clients behind the botocore instrumentor's breakers, against moto in server
mode behind the fault proxy."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

aiobotocore_session = pytest.importorskip(
    "aiobotocore.session", reason="aiobotocore is not installed (extra 'aiobotocore')"
)
from aiobotocore.client import AioBaseClient  # noqa: E402
from aiobotocore.config import AioConfig  # noqa: E402
from botocore.exceptions import EndpointConnectionError  # noqa: E402

from brownout.breaker import BreakerConfig, BreakerRegistry, BreakerState, Outcome  # noqa: E402
from brownout.breaker.errors import CircuitOpenError  # noqa: E402
from brownout.instrumentation.botocore import (  # noqa: E402
    BotocoreBreakerInstrumentor,
    BotocoreCircuitOpenError,
)
from brownout.instrumentation.wrapping import is_wrapped  # noqa: E402
from brownout.testing import FakeClock  # noqa: E402
from tests.instrumentation.faultproxy import FaultProxy  # noqa: E402

CONFIG = BreakerConfig(consecutive_failures=3, open_seconds=10, jitter=0)
Client = Callable[[], Any]


@pytest.fixture
def proxy(fault_proxy: Callable[[str, int], FaultProxy], moto_port: int) -> FaultProxy:
    return fault_proxy("127.0.0.1", moto_port)


@pytest.fixture
def instrumented(registry: BreakerRegistry) -> AsyncIterator[BotocoreBreakerInstrumentor]:
    instrumentor = BotocoreBreakerInstrumentor()
    instrumentor.instrument(registry=registry, config=CONFIG)
    yield instrumentor  # type: ignore[misc]
    instrumentor.uninstrument()


def s3_client(port: int) -> Any:
    return aiobotocore_session.get_session().create_client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=AioConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=0.5,
            read_timeout=10.0,
        ),
    )


async def test_calls_go_through_the_s3_breaker_by_operation(
    instrumented: BotocoreBreakerInstrumentor, registry: BreakerRegistry, proxy: FaultProxy
) -> None:
    assert is_wrapped(AioBaseClient, "_make_api_call")
    bucket = f"brownout-{uuid.uuid4().hex[:12]}"
    async with s3_client(proxy.port) as s3:
        await s3.create_bucket(Bucket=bucket)
        await s3.put_object(Bucket=bucket, Key="greeting", Body=b"hello")
        answer = await s3.get_object(Bucket=bucket, Key="greeting")
        async with answer["Body"] as body:
            assert await body.read() == b"hello"

    breaker = registry.get(f"s3 http://127.0.0.1:{proxy.port} us-east-1")
    assert breaker.component == "s3"
    successes = {
        stats.name: stats.by_outcome[Outcome.SUCCESS].count for stats in breaker.operations()
    }
    assert successes == {"call": 0, "CreateBucket": 1, "PutObject": 1, "GetObject": 1}


async def test_missing_keys_never_trip_refusals_do_and_the_breaker_recovers(
    instrumented: BotocoreBreakerInstrumentor,
    registry: BreakerRegistry,
    proxy: FaultProxy,
    clock: FakeClock,
) -> None:
    bucket = f"brownout-{uuid.uuid4().hex[:12]}"
    async with s3_client(proxy.port) as s3:
        await s3.create_bucket(Bucket=bucket)
        for _ in range(5):
            with pytest.raises(s3.exceptions.NoSuchKey):
                await s3.get_object(Bucket=bucket, Key="absent")
        breaker = registry.get(f"s3 http://127.0.0.1:{proxy.port} us-east-1")
        assert breaker.state is BreakerState.CLOSED
        assert breaker.calls_by_outcome()[Outcome.IGNORED] == 5

        proxy.refuse()
        for _ in range(3):
            with pytest.raises(EndpointConnectionError) as refused:
                await s3.head_bucket(Bucket=bucket)
            assert not isinstance(refused.value, CircuitOpenError)
        assert breaker.state is BreakerState.OPEN

        proxy.passthrough()
        with pytest.raises(EndpointConnectionError) as rejected:
            await s3.head_bucket(Bucket=bucket)  # the open breaker does not even try
        assert isinstance(rejected.value, BotocoreCircuitOpenError)
        assert rejected.value.retry_after == pytest.approx(10.0)
        assert breaker.calls_by_outcome()[Outcome.REJECTED] == 1

        clock.advance(10)
        states = []
        for _ in range(CONFIG.half_open_permits):  # the half-open probes
            await s3.head_bucket(Bucket=bucket)
            states.append(breaker.state)
        assert states == [BreakerState.HALF_OPEN] * (len(states) - 1) + [BreakerState.CLOSED]


def test_uninstrument_removes_the_aiobotocore_wrapper(registry: BreakerRegistry) -> None:
    original = vars(AioBaseClient)["_make_api_call"]
    instrumentor = BotocoreBreakerInstrumentor()
    instrumentor.instrument(registry=registry)
    assert vars(AioBaseClient)["_make_api_call"] is not original
    instrumentor.uninstrument()
    assert vars(AioBaseClient)["_make_api_call"] is original
