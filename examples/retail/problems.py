"""Dependency failures inside a handler: 503 problems with Retry-After, never a 500.

An open breaker that escapes a handler is brownout's to answer (it knows when the breaker
half-opens), so these handlers re-raise :class:`brownout.CircuitOpenError`.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from brownout import CircuitOpenError
from brownout.middleware.responses import PROBLEM_JSON

RETRY_AFTER_SECONDS = 2


def unavailable(what: str, retry_after: int = RETRY_AFTER_SECONDS) -> JSONResponse:
    return JSONResponse(
        {
            "type": "urn:retail:problem:dependency-unavailable",
            "title": "Service temporarily unavailable",
            "status": 503,
            "detail": f"The {what} did not answer; nothing was changed. Retry later.",
        },
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
    )


def problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": detail, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM_JSON,
    )


def install(app: FastAPI) -> None:
    async def database_failed(request: Request, error: Exception) -> JSONResponse:
        if isinstance(error, CircuitOpenError):
            raise error
        # A failed statement rolled its transaction back: the write did not happen.
        return unavailable("database")

    async def storage_failed(request: Request, error: Exception) -> JSONResponse:
        if isinstance(error, CircuitOpenError):
            raise error
        return unavailable("image storage")

    app.add_exception_handler(OperationalError, database_failed)
    app.add_exception_handler(PoolTimeoutError, database_failed)
    app.add_exception_handler(BotoCoreError, storage_failed)
