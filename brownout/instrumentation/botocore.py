"""Circuit breakers around every botocore (and so boto3) client call.

Wraps ``botocore.client.BaseClient._make_api_call``, the one method every client operation
goes through (``s3.put_object`` -> ``_make_api_call("PutObject", params)``), and
``aiobotocore.client.AioBaseClient._make_api_call`` when aiobotocore is installed.

One breaker per service, endpoint and region, named ``"s3 https://host:port us-east-1"``:
the endpoint carries no credentials or query, and an S3 bucket never becomes part of a
name because botocore adds it to the host or path per request. S3 counts as component
``s3``, every other service as ``external`` (override per service with
``service_components={"dynamodb": "database"}``, or all at once with ``component=``).

botocore retries inside ``_make_api_call`` (``retries={"max_attempts": ...}``), so one
user call is one breaker call whatever the retries; the breaker sees the final outcome.
Errors raised later, while reading a streaming body (``get_object()["Body"].read()``),
happen outside the call and are not counted.

    BotocoreBreakerInstrumentor().instrument()
    try:
        s3.get_object(Bucket="b", Key="k")
    except EndpointConnectionError:   # an open breaker is one too
        ...
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, ClassVar

from botocore.client import BaseClient  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from brownout.breaker import Breaker, CircuitOpenError
from brownout.instrumentation.base import BreakerInstrumentor
from brownout.instrumentation.options import InstrumentationOptions
from brownout.instrumentation.targets import redact_url
from brownout.instrumentation.wrapping import unwrap, wrap

_instruments_botocore = ("botocore ~= 1.0",)
_instruments_aiobotocore = ("aiobotocore >= 2.0, < 4.0",)
_instruments_any = (*_instruments_botocore, *_instruments_aiobotocore)

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
"""Error codes that mean the service is shedding load (botocore's own throttling list)."""

SERVICE_COMPONENTS: Mapping[str, str] = {"s3": "s3"}
"""Services with a component of their own; every other service is ``external``."""


def is_service_failure(error: BaseException) -> bool:
    """A ``ClientError`` the service raised because it is failing or overloaded (5xx, 429,
    a throttling code) rather than because of the request (NoSuchKey, AccessDenied)."""
    if not isinstance(error, ClientError):
        return False
    response = error.response
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    code = response.get("Error", {}).get("Code")
    return status >= 500 or status == 429 or code in THROTTLING_CODES


CLASSIFICATION: Mapping[str, Any] = {
    # Connection, SSL, proxy and connect-timeout errors, and read timeouts / dropped
    # connections (HTTPClientError); ClientErrors only when is_service_failure says so.
    "record_exceptions": (BotocoreConnectionError, HTTPClientError),
    "record_when": is_service_failure,
}


class BotocoreCircuitOpenError(CircuitOpenError, EndpointConnectionError):  # type: ignore[misc]
    """The breaker of an AWS endpoint is open; also a botocore ``EndpointConnectionError``
    (so a ``BotoCoreError``), which code talking to AWS already handles."""

    def __init__(self, breaker: str, component: str, retry_after: float | None) -> None:
        # botocore's constructor takes only keywords and formats its own message; we keep
        # CircuitOpenError's args and message, and botocore's ``kwargs`` for code reading it.
        Exception.__init__(self, breaker, component, retry_after)
        self.kwargs = {"endpoint_url": _endpoint_of(breaker)}

    __str__ = CircuitOpenError.__str__

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)


def _endpoint_of(breaker: str) -> str:
    # Names are "<service> <endpoint> <region>"; the endpoint holds no spaces.
    parts = breaker.split(" ")
    return parts[1] if len(parts) == 3 else breaker


def breaker_name(service: str, endpoint_url: str | None, region: str | None) -> str:
    """``"s3 https://s3.us-east-1.amazonaws.com us-east-1"``: no credentials, no query."""
    endpoint = redact_url(endpoint_url) if endpoint_url else "default"
    return f"{service} {endpoint} {region or 'global'}"


_Target = tuple[str, str | None, str | None]
_CACHE = "_brownout_breaker"


class BotocoreBreakerInstrumentor(BreakerInstrumentor):
    """Breakers around botocore / aiobotocore client calls.

    Options: the shared ones (``registry``, ``meter_provider``, ``component``, ``config``,
    ``board``, ``enforce_features``) and ``service_components``, a mapping from botocore
    service name (``"s3"``, ``"dynamodb"``) to component. ``enforce_features`` has no
    effect here: no feature of the default matrix is tied to AWS calls.
    """

    extra_options: ClassVar[frozenset[str]] = frozenset({"service_components"})

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments_botocore

    def _install(self, options: InstrumentationOptions, **extras: Any) -> None:
        components = extras.get("service_components") or {}
        if not isinstance(components, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) and value
            for key, value in components.items()
        ):
            raise TypeError(
                "service_components must map botocore service names to component names, "
                'e.g. {"dynamodb": "database"}'
            )
        self._components = {**SERVICE_COMPONENTS, **components}
        self._config = options.breaker_config(CLASSIFICATION)
        self._targets: dict[_Target, Breaker] = {}
        wrap(BaseClient, "_make_api_call", self._guard)
        self._aio_client = _aiobotocore_client()
        if self._aio_client is not None:
            wrap(self._aio_client, "_make_api_call", self._guard_async)

    def _remove(self) -> None:
        unwrap(BaseClient, "_make_api_call")
        if self._aio_client is not None:
            unwrap(self._aio_client, "_make_api_call")
        self._targets = {}

    def _guard(
        self,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        breaker = self._breaker_for(instance)
        operation = breaker.operation(_operation_name(args, kwargs))
        return breaker.run(wrapped, args, kwargs, operation)

    def _guard_async(
        self,
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Awaitable[Any]:
        breaker = self._breaker_for(instance)
        operation = breaker.operation(_operation_name(args, kwargs))
        return breaker.run_async(wrapped, args, kwargs, operation)

    def _breaker_for(self, client: Any) -> Breaker:
        # A client's service, endpoint and region are fixed when it is created, so each
        # client remembers its breaker for as long as this installation lasts.
        cached = client.__dict__.get(_CACHE)
        if cached is not None and cached[0] is self._targets:
            breaker: Breaker = cached[1]
            return breaker
        meta = client.meta
        target = (meta.service_model.service_name, meta.endpoint_url, meta.region_name)
        breaker = self._targets.get(target) or self._create(target)
        client.__dict__[_CACHE] = (self._targets, breaker)
        return breaker

    def _create(self, target: _Target) -> Breaker:
        service, endpoint_url, region = target
        options = self.options
        component = options.component or self._components.get(service, "external")
        breaker = options.registry.breaker(
            breaker_name(service, endpoint_url, region),
            component=component,
            config=self._config,
            open_error=BotocoreCircuitOpenError,
        )
        self._targets[target] = breaker
        return breaker


def _operation_name(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    name = args[0] if args else kwargs.get("operation_name")
    return name if isinstance(name, str) else "call"


def _aiobotocore_client() -> type | None:
    try:
        module = importlib.import_module("aiobotocore.client")
    except ImportError:
        return None
    client: type = module.AioBaseClient
    return client
