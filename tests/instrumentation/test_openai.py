"""OpenAI SDK breakers against a real local HTTP server speaking the OpenAI API.

The SDK runs unmodified (``max_retries=0`` unless a test says otherwise) against a
threaded ``http.server`` that answers JSON, server-sent-event streams, error statuses,
streams that break or report an error mid-way, and requests that hang past the client's
timeout.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import pickle
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from brownout.breaker import Breaker, BreakerConfig, BreakerRegistry, BreakerState, Outcome
from brownout.breaker.errors import CircuitOpenError
from brownout.features import FeatureDisabledError
from brownout.health.snapshot import Snapshot, SnapshotBoard
from brownout.instrumentation.openai import (
    METHODS,
    GuardedAsyncStream,
    GuardedStream,
    OpenAIBreakerInstrumentor,
    OpenAICircuitOpenError,
    breaker_name,
)
from brownout.instrumentation.wrapping import is_wrapped
from brownout.levels import Level
from brownout.testing import FakeClock
from tests.instrumentation.conftest import side_by_side
from tests.instrumentation.exposure import everything_shown, label_values
from tests.servers import free_port

API_KEY = "sk-proj-BROWNOUTTESTSECRET0123456789"
CONFIG = BreakerConfig(consecutive_failures=3, open_seconds=10, jitter=0)
MESSAGES = [{"role": "user", "content": "hi"}]
OWNERS = [
    (getattr(__import__(module, fromlist=[name]), prefix + name), method)
    for module, name, method, _ in METHODS
    for prefix in ("", "Async")
]
ORIGINALS = {(owner, method): owner.__dict__[method] for owner, method in OWNERS}

# -- the fake API ---------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-test",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
}
BODIES: dict[str, Any] = {
    "/v1/chat/completions": COMPLETION,
    "/v1/embeddings": {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
        "model": "embed-test",
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    },
    "/v1/moderations": {"id": "modr-1", "model": "mod-test", "results": []},
    "/v1/responses": {
        "id": "resp-1",
        "object": "response",
        "created_at": 0,
        "model": "gpt-test",
        "status": "completed",
        "output": [],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
    },
}


def _chunk(content: str) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeOpenAI

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(self.path)
        mode = self.server.mode
        if mode == "hang":
            self.server.released.wait(10)
            mode = "ok"
        if mode.isdigit():
            status = int(mode)
            error = {"error": {"message": f"status {status}", "type": "test", "code": None}}
            self._send(status, "application/json", json.dumps(error).encode())
        elif mode == "ok":
            self._send(200, "application/json", json.dumps(BODIES[self.path]).encode())
        else:
            self._stream(mode)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("retry-after-ms", "5")  # keeps the SDK's own retries quick
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, mode: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [_chunk("a"), _chunk("b")]
        if mode == "stream":
            events += [_chunk("c"), b"data: [DONE]\n\n"]
        elif mode == "error-event":
            events.append(b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n')
        for event in events:
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        if mode == "broken-stream":
            # Hang up mid-body: no terminating chunk, the client sees a truncated stream.
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.requests: list[str] = []
        self.released = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that close a stream early reset the connection mid-write: expected here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture
def api() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def instrumented(registry: BreakerRegistry) -> Iterator[OpenAIBreakerInstrumentor]:
    instrumentor = OpenAIBreakerInstrumentor()
    instrumentor.instrument(registry=registry, config=CONFIG)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def client(api: FakeOpenAI) -> Iterator[OpenAI]:
    with OpenAI(api_key=API_KEY, base_url=api.base_url, max_retries=0, timeout=5.0) as client:
        yield client


@pytest.fixture
async def aclient(api: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        api_key=API_KEY, base_url=api.base_url, max_retries=0, timeout=5.0
    ) as client:
        yield client


def the_breaker(registry: BreakerRegistry) -> Breaker:
    (breaker,) = registry
    return breaker


def counts(breaker: Breaker) -> dict[str, int]:
    return {outcome.label: count for outcome, count in breaker.calls_by_outcome().items() if count}


def chat(client: OpenAI, **options: Any) -> Any:
    return client.chat.completions.create(model="gpt-test", messages=MESSAGES, **options)  # type: ignore[arg-type]


def trip(client: OpenAI, api: FakeOpenAI, mode: str = "500") -> None:
    """Three 5xx answers in a row: CONFIG's consecutive-failure rule opens the breaker."""
    api.mode = mode
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            chat(client)


async def achat(client: AsyncOpenAI, **options: Any) -> Any:
    return await client.chat.completions.create(model="gpt-test", messages=MESSAGES, **options)  # type: ignore[arg-type]


# -- calls, names, operations ----------------------------------------------------------------

OPERATIONS = {
    "chat.completions.create": 1,
    "chat.completions.parse": 1,
    "embeddings.create": 1,
    "moderations.create": 1,
    "responses.create": 1,
    "responses.parse": 1,
}


def test_every_resource_call_goes_through_one_breaker_per_base_url(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
) -> None:
    assert chat(client).choices[0].message.content == "hello"
    client.chat.completions.parse(model="gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
    assert client.embeddings.create(model="embed-test", input="hi").data[0].embedding == [0.5]
    client.moderations.create(input="hi")
    assert client.responses.create(model="gpt-test", input="hi").id == "resp-1"
    client.responses.parse(model="gpt-test", input="hi")

    breaker = the_breaker(registry)
    assert breaker.name == f"openai {api.base_url}/"
    assert breaker.component == "openai"
    by_operation = {
        stats.name: stats.by_outcome[Outcome.SUCCESS].count for stats in breaker.operations()
    }
    assert by_operation == {"call": 0, **OPERATIONS}
    assert len(api.requests) == 6


async def test_async_resource_calls(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    aclient: AsyncOpenAI,
) -> None:
    assert (await achat(aclient)).choices[0].message.content == "hello"
    await aclient.chat.completions.parse(model="gpt-test", messages=MESSAGES)  # type: ignore[arg-type]
    await aclient.embeddings.create(model="embed-test", input="hi")
    await aclient.moderations.create(input="hi")
    await aclient.responses.create(model="gpt-test", input="hi")
    await aclient.responses.parse(model="gpt-test", input="hi")

    breaker = the_breaker(registry)
    by_operation = {
        stats.name: stats.by_outcome[Outcome.SUCCESS].count for stats in breaker.operations()
    }
    assert by_operation == {"call": 0, **OPERATIONS}


def test_clients_with_other_base_urls_get_their_own_breakers(
    instrumented: OpenAIBreakerInstrumentor, registry: BreakerRegistry, api: FakeOpenAI
) -> None:
    other = FakeOpenAI()
    threading.Thread(target=other.serve_forever, args=(0.05,), daemon=True).start()
    try:
        for base_url in (api.base_url, other.base_url, api.base_url):
            with OpenAI(api_key=API_KEY, base_url=base_url, max_retries=0) as client:
                chat(client)
        # A client whose base URL changes moves to the new URL's breaker.
        with OpenAI(api_key=API_KEY, base_url=api.base_url, max_retries=0) as client:
            chat(client)
            client.base_url = other.base_url
            chat(client)
    finally:
        other.shutdown()
        other.server_close()
    calls = {b.name: b.calls_by_outcome()[Outcome.SUCCESS] for b in registry}
    assert calls == {f"openai {api.base_url}/": 3, f"openai {other.base_url}/": 2}
    assert (len(api.requests), len(other.requests)) == (3, 2)


# -- classification -------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["429", "500", "502", "503", "408"])
def test_overload_and_server_errors_trip(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
    status: str,
) -> None:
    api.mode = status
    for _ in range(3):
        with pytest.raises(openai.APIStatusError) as raised:
            chat(client)
        assert raised.value.status_code == int(status)
    breaker = the_breaker(registry)
    assert counts(breaker) == {"failure": 3}
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize("status", ["400", "401", "403", "404", "409", "422"])
def test_request_errors_never_trip(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
    status: str,
) -> None:
    api.mode = status
    for _ in range(5):
        with pytest.raises(openai.APIStatusError):
            chat(client)
    breaker = the_breaker(registry)
    assert counts(breaker) == {"ignored": 5}
    assert breaker.state is BreakerState.CLOSED


def test_timeouts_trip(
    instrumented: OpenAIBreakerInstrumentor, registry: BreakerRegistry, api: FakeOpenAI
) -> None:
    api.mode = "hang"
    with OpenAI(api_key=API_KEY, base_url=api.base_url, max_retries=0, timeout=0.2) as client:
        for _ in range(3):
            with pytest.raises(openai.APITimeoutError):
                client.embeddings.create(model="embed-test", input="hi")
    assert counts(the_breaker(registry)) == {"failure": 3}
    assert the_breaker(registry).state is BreakerState.OPEN


async def test_refused_connections_trip_async(
    instrumented: OpenAIBreakerInstrumentor, registry: BreakerRegistry
) -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    async with AsyncOpenAI(api_key=API_KEY, base_url=base_url, max_retries=0) as client:
        for _ in range(3):
            with pytest.raises(openai.APIConnectionError) as raised:
                await achat(client)
            assert not isinstance(raised.value, CircuitOpenError)
        with pytest.raises(OpenAICircuitOpenError):
            await achat(client)
    assert counts(the_breaker(registry)) == {"failure": 3, "rejected": 1}


def test_one_user_call_is_one_breaker_call_whatever_the_sdk_retries(
    instrumented: OpenAIBreakerInstrumentor, registry: BreakerRegistry, api: FakeOpenAI
) -> None:
    api.mode = "500"
    with (
        OpenAI(api_key=API_KEY, base_url=api.base_url, max_retries=2) as client,
        pytest.raises(openai.InternalServerError),
    ):
        chat(client)
    assert len(api.requests) == 3
    assert counts(the_breaker(registry)) == {"failure": 1}


# -- the open breaker -----------------------------------------------------------------------


def test_open_breaker_fails_fast_with_an_openai_connection_error(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
) -> None:
    trip(client, api, "503")
    api.mode = "ok"
    sent = len(api.requests)

    with pytest.raises(openai.APIConnectionError) as raised:
        chat(client)
    error = raised.value
    assert isinstance(error, OpenAICircuitOpenError)
    assert isinstance(error, openai.APIError)
    assert len(api.requests) == sent  # nothing was sent
    assert error.breaker == f"openai {api.base_url}/"
    assert error.component == "openai"
    assert error.retry_after == pytest.approx(10.0)
    assert (
        error.message
        == str(error)
        == (f"circuit 'openai {api.base_url}/' (openai) is open for another 10.0s")
    )
    assert str(error.request.url) == f"{api.base_url}/"
    assert error.body is None
    assert isinstance(error.__cause__, openai.InternalServerError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is OpenAICircuitOpenError
    assert copy.args == error.args


def test_recovers_through_half_open(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
    clock: FakeClock,
) -> None:
    trip(client, api)
    api.mode = "ok"
    clock.advance(10)
    for _ in range(3):
        chat(client)
    assert the_breaker(registry).state is BreakerState.CLOSED


# -- streams --------------------------------------------------------------------------------


def test_stream_is_a_success_once_exhausted_and_its_duration_runs_to_the_end(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
    clock: FakeClock,
) -> None:
    api.mode = "stream"
    stream = chat(client, stream=True)
    assert isinstance(stream, openai.Stream)
    assert isinstance(stream, GuardedStream)
    breaker = the_breaker(registry)
    chunks = [next(stream).choices[0].delta.content]
    clock.advance(2.0)
    assert counts(breaker) == {}
    chunks += [chunk.choices[0].delta.content for chunk in stream]
    assert chunks == ["a", "b", "c"]
    assert counts(breaker) == {"success": 1}
    success = breaker.operation("chat.completions.create").by_outcome[Outcome.SUCCESS]
    assert sum(success.bucket_sums()) == pytest.approx(2.0)
    stream.close()
    del stream
    gc.collect()
    assert counts(breaker) == {"success": 1}


def test_stream_broken_mid_way_is_a_failure(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
) -> None:
    api.mode = "broken-stream"
    for _ in range(3):
        received: list[str] = []
        with chat(client, stream=True) as stream, pytest.raises(openai.APIConnectionError):
            received.extend(chunk.choices[0].delta.content for chunk in stream)
        assert received == ["a", "b"]
    breaker = the_breaker(registry)
    assert counts(breaker) == {"failure": 3}
    assert breaker.state is BreakerState.OPEN


def test_stream_reporting_an_error_event_is_a_failure(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
) -> None:
    api.mode = "error-event"
    with pytest.raises(openai.APIError, match="overloaded"):
        for _ in chat(client, stream=True):
            pass
    assert counts(the_breaker(registry)) == {"failure": 1}


def test_stream_closed_early_is_recorded_once(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
) -> None:
    api.mode = "stream"
    with chat(client, stream=True) as stream:
        for _ in stream:
            break
    breaker = the_breaker(registry)
    assert counts(breaker) == {"success": 1}
    stream.close()
    with contextlib.suppress(Exception):
        list(stream)  # reading on after close ends one way or another: already settled
    del stream
    gc.collect()
    assert counts(breaker) == {"success": 1}


def test_abandoned_stream_gives_its_permit_back(
    registry: BreakerRegistry, client: OpenAI, api: FakeOpenAI, clock: FakeClock
) -> None:
    # One half-open probe: a stream that holds it forever would keep the breaker shut.
    instrumentor = OpenAIBreakerInstrumentor()
    config = CONFIG.model_copy(update={"half_open_permits": 1})
    instrumentor.instrument(registry=registry, config=config)
    try:
        trip(client, api)
        clock.advance(10)
        api.mode = "stream"
        stream = chat(client, stream=True)
        next(stream)
        breaker = the_breaker(registry)
        assert breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(OpenAICircuitOpenError):
            chat(client)  # the only probe permit is out with the stream

        stream.response.close()
        del stream
        gc.collect()
        assert counts(breaker) == {"failure": 3, "rejected": 1, "ignored": 1}
        api.mode = "ok"
        chat(client)
        assert breaker.state is BreakerState.CLOSED
    finally:
        instrumentor.uninstrument()


def test_stream_helper_is_guarded_through_create(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    client: OpenAI,
    api: FakeOpenAI,
) -> None:
    api.mode = "stream"
    with client.chat.completions.stream(model="gpt-test", messages=MESSAGES) as stream:  # type: ignore[arg-type]
        text = "".join(event.delta for event in stream if event.type == "content.delta")
    assert text == "abc"
    assert counts(the_breaker(registry)) == {"success": 1}


async def test_async_streams(
    instrumented: OpenAIBreakerInstrumentor,
    registry: BreakerRegistry,
    aclient: AsyncOpenAI,
    api: FakeOpenAI,
) -> None:
    api.mode = "stream"
    stream = await achat(aclient, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    assert isinstance(stream, GuardedAsyncStream)
    assert [chunk.choices[0].delta.content async for chunk in stream] == ["a", "b", "c"]
    breaker = the_breaker(registry)
    assert counts(breaker) == {"success": 1}

    async with await achat(aclient, stream=True) as stream:
        async for _ in stream:
            break
    assert counts(breaker) == {"success": 2}

    api.mode = "broken-stream"
    with pytest.raises(openai.APIConnectionError):
        async for _ in await achat(aclient, stream=True):
            pass
    assert counts(breaker) == {"success": 2, "failure": 1}

    api.mode = "stream"
    stream = await achat(aclient, stream=True)
    await stream.aclose()
    await stream.close()
    assert counts(breaker) == {"success": 3, "failure": 1}


# -- feature enforcement --------------------------------------------------------------------


def _at(board: SnapshotBoard, level: Level) -> None:
    board.publish(Snapshot(level=level, policy=board.matrix.policy(level), retry_after=7.0))


def test_enforced_ai_feature_fails_fast_when_the_level_turns_it_off(
    registry: BreakerRegistry, client: OpenAI, api: FakeOpenAI
) -> None:
    board = SnapshotBoard()
    instrumentor = OpenAIBreakerInstrumentor()
    instrumentor.instrument(registry=registry, board=board, enforce_features=True)
    try:
        _at(board, Level.DEGRADED)
        chat(client)
        _at(board, Level.LIMITED)
        with pytest.raises(FeatureDisabledError) as raised:
            client.embeddings.create(model="embed-test", input="hi")
        assert raised.value.feature == "ai"
        assert raised.value.level is Level.LIMITED
        assert raised.value.retry_after == 7.0
        assert len(api.requests) == 1
        assert counts(the_breaker(registry)) == {"success": 1}
        _at(board, Level.OPTIMAL)
        chat(client)
    finally:
        instrumentor.uninstrument()


async def test_enforcement_is_opt_in_and_covers_async_calls(
    registry: BreakerRegistry, aclient: AsyncOpenAI, api: FakeOpenAI
) -> None:
    board = SnapshotBoard()
    _at(board, Level.EMERGENCY)
    instrumentor = OpenAIBreakerInstrumentor()
    instrumentor.instrument(registry=registry, board=board)
    try:
        await achat(aclient)
    finally:
        instrumentor.uninstrument()
    instrumentor.instrument(registry=registry, board=board, enforce_features=True)
    try:
        with pytest.raises(FeatureDisabledError):
            await achat(aclient)
    finally:
        instrumentor.uninstrument()
    assert len(api.requests) == 1


# -- secrets --------------------------------------------------------------------------------


def test_breaker_names_hold_no_credentials_or_query() -> None:
    name = breaker_name(f"https://user:{API_KEY}@gateway.internal:8443/v1/?api-key={API_KEY}")
    assert name == "openai https://gateway.internal:8443/v1/"


def test_no_secret_reaches_names_labels_errors_or_logs(
    registry: BreakerRegistry, api: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentor = OpenAIBreakerInstrumentor()
    instrumentor.instrument(registry=registry, config=CONFIG, meter_provider=provider)
    caplog.set_level(logging.DEBUG, logger="brownout")
    texts: list[str] = []
    try:
        with OpenAI(
            api_key=API_KEY,
            organization="org-SECRETORG",
            base_url=api.base_url,
            max_retries=0,
            default_query={"api-key": API_KEY},
        ) as client:
            api.mode = "500"
            for _ in range(4):
                try:
                    chat(client)
                except OpenAICircuitOpenError as error:
                    texts += [str(error), error.message, str(error.request.url), repr(error)]
                except openai.InternalServerError:
                    pass  # the SDK's own error: its request URL is the SDK's business
    finally:
        instrumentor.uninstrument()
        provider.shutdown()

    assert any("is open" in text for text in texts)
    labels = label_values(reader)
    assert f"openai {api.base_url}/" in labels
    everything = everything_shown(texts, registry, caplog, labels)
    for secret in (API_KEY, "sk-", "SECRETORG", "api-key", "?"):
        assert secret not in everything


# -- installing and removing ----------------------------------------------------------------


def test_uninstrument_restores_every_method(registry: BreakerRegistry, client: OpenAI) -> None:
    instrumentor = OpenAIBreakerInstrumentor()
    instrumentor.instrument(registry=registry)
    assert all(is_wrapped(owner, method) for owner, method in OWNERS)
    instrumentor.uninstrument()
    for (owner, method), original in ORIGINALS.items():
        assert owner.__dict__[method] is original
    chat(client)
    assert len(registry) == 0


def test_unknown_option_is_named(registry: BreakerRegistry) -> None:
    with pytest.raises(TypeError, match="enforce_feature"):
        OpenAIBreakerInstrumentor().instrument(registry=registry, enforce_feature=True)
    assert not any(is_wrapped(owner, method) for owner, method in OWNERS)


# -- coexistence -----------------------------------------------------------------------------


def _successes(registry: BreakerRegistry) -> int:
    return the_breaker(registry).calls_by_outcome()[Outcome.SUCCESS]


@pytest.mark.parametrize("official_first", [True, False])
@pytest.mark.parametrize("official_leaves_first", [True, False])
async def test_coexists_with_the_official_openai_instrumentation(
    registry: BreakerRegistry,
    client: OpenAI,
    aclient: AsyncOpenAI,
    spans: InMemorySpanExporter,
    tracer_provider: TracerProvider,
    official_first: bool,
    official_leaves_first: bool,
) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    official, ours = OpenAIInstrumentor(), OpenAIBreakerInstrumentor()
    with side_by_side(
        official, ours, official_first=official_first, tracer_provider=tracer_provider,
        registry=registry,
    ):  # fmt: skip
        chat(client)
        await achat(aclient)
        client.embeddings.create(model="embed-test", input="hi")
        assert len(spans.get_finished_spans()) == 3
        assert _successes(registry) == 3

        first = official if official_leaves_first else ours
        first.uninstrument()
        chat(client)
        await achat(aclient)
        client.embeddings.create(model="embed-test", input="hi")
        traced, guarded = len(spans.get_finished_spans()), _successes(registry)
        if first is official:
            assert (traced, guarded) == (3, 6)  # tracing gone, breakers stay
        else:
            assert (traced, guarded) == (6, 3)  # breakers gone, tracing stays
    for (owner, method), original in ORIGINALS.items():
        assert owner.__dict__[method] is original
