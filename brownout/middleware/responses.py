"""Rejections and errors as RFC 9457 ``application/problem+json`` responses."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp

from brownout.levels import Level

PROBLEM_JSON = "application/problem+json"

FEATURE_OFF = "feature-off"
DEPENDENCY_DOWN = "dependency-down"
BATCH_CAPACITY = "batch-capacity"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request was not served; handed to the rejection builder."""

    kind: str
    """``feature-off``, ``dependency-down`` or ``batch-capacity``."""
    level: Level
    feature: str
    retry_after: int
    """Whole seconds, at least 1, jitter included."""
    component: str | None = None

    @property
    def detail(self) -> str:
        level = self.level.label
        if self.kind == DEPENDENCY_DOWN:
            return (
                f"The {self.component} dependency is unavailable, so {self.feature!r} work "
                f"cannot be served (level {level})."
            )
        if self.kind == BATCH_CAPACITY:
            return f"Batch capacity at level {level} is in use; retry later."
        return f"Feature {self.feature!r} is off at level {level}."

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after),
            "Cache-Control": "no-store",
            "Brownout-Level": self.level.label,
        }

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:brownout:problem:{self.kind}",
            "title": "Service temporarily degraded",
            "status": 503,
            "detail": self.detail,
            "level": self.level.label,
            "feature": self.feature,
        }
        if self.component is not None:
            body["component"] = self.component
        return body


RejectionBuilder = Callable[[Rejection], ASGIApp | Awaitable[ASGIApp]]
"""Builds the response (any ASGI app, such as a Starlette ``Response``) for a rejection;
may be sync or async."""


def problem_response(rejection: Rejection) -> Response:
    """The default rejection: 503 problem+json with ``Retry-After``, ``Cache-Control:
    no-store`` and ``Brownout-Level``."""
    return Response(
        json.dumps(rejection.problem()).encode(),
        status_code=503,
        headers=rejection.headers(),
        media_type=PROBLEM_JSON,
    )


def problem(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> Response:
    """A problem+json error response for the brownout endpoints themselves."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    all_headers = {"Cache-Control": "no-store", **(headers or {})}
    return Response(
        json.dumps(body).encode(), status_code=status, headers=all_headers, media_type=PROBLEM_JSON
    )


class RetryAfter:
    """Turns a wait in seconds into a ``Retry-After`` value: stretched by up to
    ``jitter`` (a fraction) so clients do not come back in step, rounded up, at least 1."""

    def __init__(self, jitter: float, random_source: Callable[[], float] = random.random) -> None:
        self.jitter = jitter
        self.random = random_source

    def __call__(self, seconds: float) -> int:
        stretched = max(0.0, seconds) * (1.0 + self.jitter * self.random())
        return max(1, math.ceil(stretched))
