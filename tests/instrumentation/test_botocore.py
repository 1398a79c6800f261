"""botocore / boto3 breakers against real HTTP endpoints.

S3 and SQS run on moto in server mode behind the fault proxy (refuse, blackhole, reset);
5xx and throttling answers come from a tiny local HTTP server that always answers the
same thing, because moto serves AWS faithfully and never fails on its own.
"""

from __future__ import annotations

import functools
import logging
import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from brownout.breaker import Breaker, BreakerConfig, BreakerRegistry, BreakerState, Outcome
from brownout.breaker.errors import CircuitOpenError
from brownout.instrumentation.botocore import (
    BotocoreBreakerInstrumentor,
    BotocoreCircuitOpenError,
    breaker_name,
)
from brownout.instrumentation.wrapping import is_wrapped
from brownout.testing import FakeClock
from tests.instrumentation.conftest import side_by_side
from tests.instrumentation.exposure import everything_shown, label_values
from tests.instrumentation.faultproxy import FaultProxy

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ORIGINAL_MAKE_API_CALL = BaseClient.__dict__["_make_api_call"]

# Trip after 3 failures in a row; 10 s open periods without jitter.
CONFIG = BreakerConfig(consecutive_failures=3, open_seconds=10, jitter=0)


@pytest.fixture
def proxy(moto_port: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", moto_port) as proxy:
        yield proxy


@pytest.fixture
def instrumented(registry: BreakerRegistry) -> Iterator[BotocoreBreakerInstrumentor]:
    instrumentor = BotocoreBreakerInstrumentor()
    instrumentor.instrument(registry=registry, config=CONFIG)
    yield instrumentor
    instrumentor.uninstrument()


def client(service: str, port: int, region: str = "us-east-1", **options: Any) -> Any:
    # moto's first call to a service builds its backend, which can take seconds on a cold
    # machine: only the blackhole test wants a short read timeout, and asks for it.
    settings: dict[str, Any] = {"connect_timeout": 0.5, "read_timeout": 10.0, **options}
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, **settings)
    return boto3.client(
        service,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=config,
    )


def new_bucket(s3: Any) -> str:
    bucket = f"brownout-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return bucket


def s3_breaker(registry: BreakerRegistry, port: int) -> Breaker:
    return registry.get(f"s3 http://127.0.0.1:{port} us-east-1")


# -- names, components, operations ------------------------------------------------------------


def test_one_breaker_per_service_endpoint_and_region(
    instrumented: BotocoreBreakerInstrumentor, registry: BreakerRegistry, proxy: FaultProxy
) -> None:
    s3 = client("s3", proxy.port)
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="greeting", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="greeting")["Body"].read() == b"hello"
    client("sqs", proxy.port, region="eu-west-1").create_queue(QueueName="jobs")
    client("s3", proxy.port, region="eu-west-1").list_buckets()

    names = {breaker.name: breaker.component for breaker in registry}
    assert names == {
        f"s3 http://127.0.0.1:{proxy.port} us-east-1": "s3",
        f"s3 http://127.0.0.1:{proxy.port} eu-west-1": "s3",
        f"sqs http://127.0.0.1:{proxy.port} eu-west-1": "external",
    }
    breaker = s3_breaker(registry, proxy.port)
    operations = {
        stats.name: stats.by_outcome[Outcome.SUCCESS].count for stats in breaker.operations()
    }
    assert operations == {"call": 0, "CreateBucket": 1, "PutObject": 1, "GetObject": 1}


def test_buckets_share_the_endpoint_breaker(
    instrumented: BotocoreBreakerInstrumentor, registry: BreakerRegistry, proxy: FaultProxy
) -> None:
    s3 = client("s3", proxy.port)
    for _ in range(3):
        new_bucket(s3)
    assert len(registry) == 1
    assert s3_breaker(registry, proxy.port).calls_by_outcome()[Outcome.SUCCESS] == 3


def test_service_components_and_component_override(
    registry: BreakerRegistry, proxy: FaultProxy
) -> None:
    instrumentor = BotocoreBreakerInstrumentor()
    instrumentor.instrument(registry=registry, service_components={"sqs": "queue"})
    try:
        client("sqs", proxy.port).create_queue(QueueName="jobs")
        client("dynamodb", proxy.port).list_tables()
    finally:
        instrumentor.uninstrument()
    assert {b.name.split(" ")[0]: b.component for b in registry} == {
        "sqs": "queue",
        "dynamodb": "external",
    }

    other = BreakerRegistry()
    instrumentor.instrument(registry=other, component="storage")
    try:
        client("s3", proxy.port).list_buckets()
    finally:
        instrumentor.uninstrument()
    assert [b.component for b in other] == ["storage"]


@pytest.mark.parametrize("bad", [{"sqs": ""}, {"sqs": 3}, ["sqs"]])
def test_bad_service_components_name_the_option(bad: Any, registry: BreakerRegistry) -> None:
    instrumentor = BotocoreBreakerInstrumentor()
    with pytest.raises(TypeError, match="service_components must map"):
        instrumentor.instrument(registry=registry, service_components=bad)
    assert not is_wrapped(BaseClient, "_make_api_call")
    instrumentor.uninstrument()


# -- classification -----------------------------------------------------------------------


def test_missing_keys_and_buckets_never_trip(
    instrumented: BotocoreBreakerInstrumentor, registry: BreakerRegistry, proxy: FaultProxy
) -> None:
    s3 = client("s3", proxy.port)
    bucket = new_bucket(s3)
    for _ in range(5):
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket=bucket, Key="absent")
        with pytest.raises(ClientError) as head:
            s3.head_object(Bucket=bucket, Key="absent")
        assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        with pytest.raises(s3.exceptions.NoSuchBucket):
            s3.list_objects_v2(Bucket="brownout-no-such-bucket")

    breaker = s3_breaker(registry, proxy.port)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.calls_by_outcome()[Outcome.IGNORED] == 15
    assert breaker.calls_by_outcome()[Outcome.FAILURE] == 0


def test_refused_connections_trip_and_the_open_breaker_fails_fast(
    instrumented: BotocoreBreakerInstrumentor, registry: BreakerRegistry, proxy: FaultProxy
) -> None:
    s3 = client("s3", proxy.port)
    bucket = new_bucket(s3)
    proxy.refuse()
    for _ in range(3):
        with pytest.raises(EndpointConnectionError) as refused:
            s3.get_object(Bucket=bucket, Key="k")
        assert not isinstance(refused.value, CircuitOpenError)
    breaker = s3_breaker(registry, proxy.port)
    assert breaker.state is BreakerState.OPEN

    # The endpoint is back, but the open breaker does not even try it.
    proxy.passthrough()
    durations = []
    for _ in range(5):
        started = time.perf_counter()
        try:
            s3.get_object(Bucket=bucket, Key="k")
        except EndpointConnectionError as error:
            durations.append(time.perf_counter() - started)
            rejected = error
    assert len(durations) == 5
    assert min(durations) < 0.001  # no connection, no retries, no backoff
    assert isinstance(rejected, BotocoreCircuitOpenError)
    assert isinstance(rejected, BotoCoreError)
    assert rejected.breaker == breaker.name
    assert rejected.component == "s3"
    assert rejected.retry_after == pytest.approx(10.0)
    assert isinstance(rejected.__cause__, EndpointConnectionError)
    assert breaker.calls_by_outcome()[Outcome.REJECTED] == 5


def test_blackholed_endpoint_times_out_and_trips(
    instrumented: BotocoreBreakerInstrumentor, registry: BreakerRegistry, proxy: FaultProxy
) -> None:
    s3 = client("s3", proxy.port, read_timeout=0.5)
    bucket = new_bucket(s3)
    proxy.blackhole()
    for _ in range(3):
        with pytest.raises(ReadTimeoutError):
            s3.get_object(Bucket=bucket, Key="k")
    breaker = s3_breaker(registry, proxy.port)
    assert breaker.state is BreakerState.OPEN
    assert breaker.operation("GetObject").by_outcome[Outcome.FAILURE].count == 3
    with pytest.raises(BotocoreCircuitOpenError):
        s3.get_object(Bucket=bucket, Key="k")


def test_reset_connections_trip(
    instrumented: BotocoreBreakerInstrumentor, registry: BreakerRegistry, proxy: FaultProxy
) -> None:
    s3 = client("s3", proxy.port)
    bucket = new_bucket(s3)
    proxy.reset()
    for _ in range(3):
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            s3.head_bucket(Bucket=bucket)
    assert s3_breaker(registry, proxy.port).state is BreakerState.OPEN


def test_recovers_through_half_open_once_the_endpoint_answers(
    instrumented: BotocoreBreakerInstrumentor,
    registry: BreakerRegistry,
    proxy: FaultProxy,
    clock: FakeClock,
) -> None:
    s3 = client("s3", proxy.port)
    bucket = new_bucket(s3)
    proxy.refuse()
    for _ in range(3):
        with pytest.raises(EndpointConnectionError):
            s3.head_bucket(Bucket=bucket)
    breaker = s3_breaker(registry, proxy.port)
    assert breaker.state is BreakerState.OPEN

    proxy.passthrough()
    clock.advance(10)
    for _ in range(3):
        s3.head_bucket(Bucket=bucket)
    assert breaker.state is BreakerState.CLOSED


class _FixedAnswer(BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer``: (status, content type, body)."""

    server: _AnswerServer

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, content_type, body = self.server.answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _AnswerServer(ThreadingHTTPServer):
    daemon_threads = True
    answer: tuple[int, str, bytes] = (200, "text/plain", b"")


@pytest.fixture
def answers() -> Iterator[_AnswerServer]:
    server = _AnswerServer(("127.0.0.1", 0), _FixedAnswer)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _s3_error(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode()


def _json_error(code: str) -> bytes:
    return f'{{"__type": "com.amazonaws.dynamodb.v20120810#{code}", "message": "m"}}'.encode()


@pytest.mark.parametrize(
    ("service", "status", "code", "failure"),
    [
        ("s3", 500, "InternalError", True),
        ("s3", 503, "SlowDown", True),
        ("s3", 503, "ServiceUnavailable", True),
        ("dynamodb", 400, "ProvisionedThroughputExceededException", True),
        ("dynamodb", 400, "ThrottlingException", True),
        ("dynamodb", 429, "TooManyRequestsException", True),
        ("s3", 403, "AccessDenied", False),
        ("s3", 400, "InvalidArgument", False),
        ("dynamodb", 400, "ValidationException", False),
        ("dynamodb", 400, "ResourceNotFoundException", False),
    ],
)
def test_service_errors_by_status_and_code(
    instrumented: BotocoreBreakerInstrumentor,
    registry: BreakerRegistry,
    answers: _AnswerServer,
    service: str,
    status: int,
    code: str,
    failure: bool,
) -> None:
    aws = client(service, answers.server_port)
    if service == "s3":
        answers.answer = (status, "application/xml", _s3_error(code))
        call = functools.partial(aws.get_object, Bucket="bucket-one", Key="k")
    else:
        answers.answer = (status, "application/x-amz-json-1.0", _json_error(code))
        call = functools.partial(aws.get_item, TableName="t", Key={"id": {"S": "1"}})
    for _ in range(3):
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == code
    (breaker,) = registry
    counts = breaker.calls_by_outcome()
    if failure:
        assert counts[Outcome.FAILURE] == 3
        assert breaker.state is BreakerState.OPEN
    else:
        assert counts[Outcome.IGNORED] == 3
        assert breaker.state is BreakerState.CLOSED


# -- the open error ------------------------------------------------------------------------


def test_open_error_is_botocores_own_and_keeps_circuit_open_properties() -> None:
    name = breaker_name("s3", "http://127.0.0.1:9000", "us-east-1")
    error = BotocoreCircuitOpenError(name, "s3", 4.25)
    assert isinstance(error, EndpointConnectionError)
    assert isinstance(error, BotoCoreError)
    assert isinstance(error, CircuitOpenError)
    assert error.args == (name, "s3", 4.25)
    assert (error.breaker, error.component, error.retry_after) == (name, "s3", 4.25)
    assert (
        str(error) == "circuit 's3 http://127.0.0.1:9000 us-east-1' (s3) is open for another 4.2s"
    )
    assert error.kwargs == {"endpoint_url": "http://127.0.0.1:9000"}
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is BotocoreCircuitOpenError
    assert copy.args == error.args
    forced = BotocoreCircuitOpenError(name, "s3", None)
    assert "until an operator resets it" in str(forced)


def test_breaker_names_hold_no_credentials_or_query() -> None:
    name = breaker_name(
        "s3", "https://AKIA123:s3cret@minio.internal:9000/?X-Amz-Signature=abc", None
    )
    assert name == "s3 https://minio.internal:9000/ global"
    assert breaker_name("sqs", None, "eu-west-1") == "sqs default eu-west-1"


# -- secrets ------------------------------------------------------------------------------


def test_no_secret_reaches_names_labels_errors_or_logs(
    registry: BreakerRegistry, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentor = BotocoreBreakerInstrumentor()
    instrumentor.instrument(registry=registry, config=CONFIG, meter_provider=provider)
    caplog.set_level(logging.DEBUG, logger="brownout")
    texts: list[str] = []
    try:
        s3 = client("s3", proxy.port)
        bucket = new_bucket(s3)
        presigned = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60
        )
        assert "Signature=" in presigned
        proxy.refuse()
        for _ in range(4):
            try:
                s3.get_object(Bucket=bucket, Key="k")
            except EndpointConnectionError as error:
                texts.append(str(error))
                texts.append(repr(error.kwargs))
    finally:
        instrumentor.uninstrument()
        provider.shutdown()

    assert any("is open" in text for text in texts)
    labels = label_values(reader)
    assert any(label.startswith("s3 http://127.0.0.1:") for label in labels)
    everything = everything_shown(texts, registry, caplog, labels)
    for secret in (ACCESS_KEY, SECRET_KEY, "Signature", "X-Amz", "?"):
        assert secret not in everything


# -- installing and removing --------------------------------------------------------------


def test_uninstrument_restores_the_client_method(
    registry: BreakerRegistry, proxy: FaultProxy
) -> None:
    instrumentor = BotocoreBreakerInstrumentor()
    instrumentor.instrument(registry=registry)
    assert is_wrapped(BaseClient, "_make_api_call")
    instrumentor.uninstrument()
    assert BaseClient.__dict__["_make_api_call"] is ORIGINAL_MAKE_API_CALL
    client("s3", proxy.port).list_buckets()
    assert len(registry) == 0


def test_a_client_outlives_an_installation(proxy: FaultProxy) -> None:
    s3 = client("s3", proxy.port)
    first, second = BreakerRegistry(), BreakerRegistry()
    instrumentor = BotocoreBreakerInstrumentor()
    for registry in (first, second):
        instrumentor.instrument(registry=registry)
        try:
            s3.list_buckets()
        finally:
            instrumentor.uninstrument()
    for registry in (first, second):
        assert s3_breaker(registry, proxy.port).calls_by_outcome()[Outcome.SUCCESS] == 1


@pytest.mark.parametrize("official_first", [True, False])
@pytest.mark.parametrize("official_leaves_first", [True, False])
def test_coexists_with_the_official_botocore_instrumentation(
    registry: BreakerRegistry,
    proxy: FaultProxy,
    spans: InMemorySpanExporter,
    tracer_provider: TracerProvider,
    official_first: bool,
    official_leaves_first: bool,
) -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    official, ours = BotocoreInstrumentor(), BotocoreBreakerInstrumentor()
    with side_by_side(
        official, ours, official_first=official_first, tracer_provider=tracer_provider,
        registry=registry,
    ):  # fmt: skip
        s3 = client("s3", proxy.port)
        s3.list_buckets()
        assert [span.name for span in spans.get_finished_spans()] == ["S3.ListBuckets"]
        assert s3_breaker(registry, proxy.port).calls_by_outcome()[Outcome.SUCCESS] == 1

        first = official if official_leaves_first else ours
        first.uninstrument()
        s3.list_buckets()
        spans_now = len(spans.get_finished_spans())
        successes = s3_breaker(registry, proxy.port).calls_by_outcome()[Outcome.SUCCESS]
        if first is official:
            assert (spans_now, successes) == (1, 2)
        else:
            assert (spans_now, successes) == (2, 1)
    assert BaseClient.__dict__["_make_api_call"] is ORIGINAL_MAKE_API_CALL
