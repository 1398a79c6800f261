"""Circuit breakers around the OpenAI SDK (1.x and later): chat completions (``create``,
``parse``), embeddings, moderations and responses (``create``, ``parse``), sync and async.

Wraps the resource methods themselves (``openai.resources.chat.completions.Completions
.create`` and so on), above the SDK's own retries: one user call is one breaker call, and
the breaker sees the outcome after ``max_retries`` retries. The ``.stream()`` helpers go
through ``create`` and are guarded with it.

One breaker per base URL, named ``"openai https://api.openai.com/v1/"`` (no key, no
credentials, no query), component ``openai``. Operations are labelled by method:
``chat.completions.create``, ``embeddings.create``...

Outcomes: connection errors and timeouts, 429, 408 and 5xx answers, and a stream that
breaks or reports an error mid-way are failures; other 4xx answers (bad request,
authentication, permission, not found, conflict, unprocessable) are ignored. Unless the
config says otherwise, a call is slow only after 60 s: generating text takes seconds.

Streams (``stream=True``) come back wrapped in a transparent proxy (still an
``openai.Stream`` / ``AsyncStream``) that holds the breaker permit until the stream ends,
so a stream's duration runs to its end. Exhausting it is a success, an error while
reading it goes through the classification, closing it early (``close()``, leaving its
``with`` block) is a success: the API was answering. A stream dropped without being
closed gives its permit back without a verdict when it is garbage collected.
``with_raw_response`` / ``with_streaming_response`` calls are recorded when the response
headers arrive.

With ``enforce_features=True``, calls fail fast with
:class:`brownout.features.FeatureDisabledError` while the current level turns ``ai`` off.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, ClassVar

import openai
import wrapt
from openai import APIConnectionError, APIError, APIStatusError

from brownout.breaker import Breaker, CircuitOpenError, OperationStats
from brownout.features import AI, FeatureDisabledError
from brownout.instrumentation.base import BreakerInstrumentor
from brownout.instrumentation.options import InstrumentationOptions
from brownout.instrumentation.targets import redact_url
from brownout.instrumentation.wrapping import unwrap, wrap

_instruments = ("openai >= 1.40",)

# The SDK moved from httpx to httpx2; its exceptions module imports whichever it uses.
_http: Any = getattr(importlib.import_module("openai._exceptions"), "httpx2", None)
if _http is None:
    import httpx as _http

METHODS: tuple[tuple[str, str, str, str], ...] = (
    ("openai.resources.chat.completions", "Completions", "create", "chat.completions.create"),
    ("openai.resources.chat.completions", "Completions", "parse", "chat.completions.parse"),
    ("openai.resources.embeddings", "Embeddings", "create", "embeddings.create"),
    ("openai.resources.moderations", "Moderations", "create", "moderations.create"),
    ("openai.resources.responses", "Responses", "create", "responses.create"),
    ("openai.resources.responses", "Responses", "parse", "responses.parse"),
)
"""(module, sync class, method, operation label); each async twin is ``Async<class>``.
Methods an older SDK lacks are skipped."""


def is_service_failure(error: BaseException) -> bool:
    """Answers that mean the API is failing or shedding load, and error events inside a
    stream (plain ``APIError``: the stream broke after it started)."""
    if isinstance(error, APIStatusError):
        status = error.status_code
        return status >= 500 or status in (408, 429)
    return type(error) is APIError


CLASSIFICATION: Mapping[str, Any] = {
    # APIConnectionError covers APITimeoutError; the transport errors are what older SDKs
    # let escape from a stream that breaks mid-way.
    "record_exceptions": (APIConnectionError, _http.TransportError),
    "record_when": is_service_failure,
    "slow_call_seconds": 60.0,
}


_CACHE = "_brownout_breaker"


def breaker_name(base_url: str) -> str:
    """``"openai https://api.openai.com/v1/"``: no credentials, no query."""
    return f"openai {redact_url(base_url)}"


@functools.lru_cache(maxsize=64)
def _request_for(breaker: str) -> Any:
    # Names are "openai <base url>"; the request is synthetic: nothing was sent.
    return _http.Request("POST", breaker.partition(" ")[2] or "http://openai.invalid/")


class OpenAICircuitOpenError(CircuitOpenError, APIConnectionError):
    """The breaker of an OpenAI base URL is open; also an ``openai.APIConnectionError``
    (so an ``openai.APIError``), which code calling the API already handles. Its
    ``request`` is a synthetic ``POST`` to the base URL: no request was sent."""

    def __init__(self, breaker: str, component: str, retry_after: float | None) -> None:
        # APIConnectionError's constructor wants a request and sets its own message; we
        # keep CircuitOpenError's args and message, and build the request only when read.
        Exception.__init__(self, breaker, component, retry_after)
        self.body = None
        self.type = None

    __str__ = CircuitOpenError.__str__

    @property
    def message(self) -> str:  # type: ignore[override]
        return str(self)

    @property
    def request(self) -> Any:  # type: ignore[override]
        return _request_for(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)


class _StreamPermit:
    """The breaker permit a stream holds until it ends. ``settle`` runs at most once: the
    permit sits in a one-item list, and ``list.pop`` is atomic."""

    __slots__ = ("breaker", "operation", "pending", "started")

    def __init__(
        self, breaker: Breaker, permit: int, started: float, operation: OperationStats
    ) -> None:
        self.breaker = breaker
        self.pending = [permit]
        self.started = started
        self.operation = operation

    def settle(self, error: BaseException | None = None) -> None:
        try:
            permit = self.pending.pop()
        except IndexError:
            return
        if error is None:
            self.breaker.on_success(permit, self.started, self.operation)
        else:
            self.breaker.on_error(permit, self.started, error, self.operation)

    def abandon(self) -> None:
        try:
            permit = self.pending.pop()
        except IndexError:
            return
        self.breaker.release(permit, self.started, self.operation)


class _ReportingStream(wrapt.ObjectProxy[Any]):
    """A stream proxy holding the permit it reports to; a stream dropped unfinished gives
    its permit back, counted as neither success nor failure."""

    def __init__(self, stream: Any, permit: _StreamPermit) -> None:
        super().__init__(stream)
        self._self_permit = permit

    def __del__(self) -> None:
        self._self_permit.abandon()


class GuardedStream(_ReportingStream):
    """An ``openai.Stream`` that reports to its breaker when it ends."""

    def __iter__(self) -> GuardedStream:
        return self

    def __next__(self) -> Any:
        try:
            return self.__wrapped__.__next__()
        except StopIteration:
            self._self_permit.settle()
            raise
        except BaseException as error:
            self._self_permit.settle(error)
            raise

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_permit.settle()

    def __enter__(self) -> GuardedStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class GuardedAsyncStream(_ReportingStream):
    """An ``openai.AsyncStream`` that reports to its breaker when it ends."""

    def __aiter__(self) -> GuardedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_permit.settle()
            raise
        except BaseException as error:
            self._self_permit.settle(error)
            raise

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_permit.settle()

    async def aclose(self) -> None:
        await self.close()

    async def __aenter__(self) -> GuardedAsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


class OpenAIBreakerInstrumentor(BreakerInstrumentor):
    """Breakers around the OpenAI SDK's chat, embeddings, moderations and responses
    calls. Options: the shared ones (``registry``, ``meter_provider``, ``component``,
    ``config``, ``board``, ``enforce_features``)."""

    default_component: ClassVar[str] = "openai"

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _install(self, options: InstrumentationOptions, **extras: Any) -> None:
        self._config = options.breaker_config(CLASSIFICATION)
        self._targets: dict[str, Breaker] = {}
        self._wrapped: list[tuple[type, str]] = []
        for module_name, class_name, method, label in METHODS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue  # an SDK from before that API
            for owner, guard in (
                (getattr(module, class_name, None), self._sync_guard(label)),
                (getattr(module, f"Async{class_name}", None), self._async_guard(label)),
            ):
                if isinstance(owner, type) and callable(getattr(owner, method, None)):
                    wrap(owner, method, guard)
                    self._wrapped.append((owner, method))

    def _remove(self) -> None:
        for owner, method in self._wrapped:
            unwrap(owner, method)
        self._wrapped = []
        self._targets = {}

    def _admit(self, resource: Any, label: str) -> tuple[Breaker, OperationStats]:
        if self.options.enforce_features:
            snapshot = self.options.board.snapshot
            if not snapshot.enabled(AI):
                raise FeatureDisabledError(AI, snapshot.level, snapshot.retry_after)
        client = resource._client
        # The public property re-imports a module on every read (1.6 µs in SDK 3.x).
        url = getattr(client, "_base_url", None) or client.base_url
        # Rendering the URL costs microseconds, so each client remembers its breaker for
        # as long as its base URL object (and this installation) stay the same.
        cached = client.__dict__.get(_CACHE)
        if cached is not None and cached[0] is url and cached[1] is self._targets:
            breaker: Breaker = cached[2]
        else:
            breaker = self._breaker_for(str(url))
            client.__dict__[_CACHE] = (url, self._targets, breaker)
        return breaker, breaker.operation(label)

    def _breaker_for(self, base_url: str) -> Breaker:
        breaker = self._targets.get(base_url)
        if breaker is None:
            breaker = self._targets[base_url] = self.options.registry.breaker(
                breaker_name(base_url),
                component=self.component,
                config=self._config,
                open_error=OpenAICircuitOpenError,
            )
        return breaker

    def _sync_guard(self, label: str) -> Callable[..., Any]:
        def guard(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            breaker, operation = self._admit(instance, label)
            permit = breaker.acquire()
            started = breaker.clock()
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as error:
                breaker.on_error(permit, started, error, operation)
                raise
            if isinstance(result, openai.Stream):
                return GuardedStream(result, _StreamPermit(breaker, permit, started, operation))
            breaker.on_success(permit, started, operation)
            return result

        return guard

    def _async_guard(self, label: str) -> Callable[..., Awaitable[Any]]:
        async def guard(
            wrapped: Callable[..., Awaitable[Any]],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            # Admission happens when the call is awaited, so an un-awaited coroutine
            # (the SDK's async .stream() helper holds one) takes no permit.
            breaker, operation = self._admit(instance, label)
            permit = breaker.acquire()
            started = breaker.clock()
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as error:
                breaker.on_error(permit, started, error, operation)
                raise
            if isinstance(result, openai.AsyncStream):
                return GuardedAsyncStream(
                    result, _StreamPermit(breaker, permit, started, operation)
                )
            breaker.on_success(permit, started, operation)
            return result

        return guard
