"""Running one client call under a breaker: the body of every wrapt wrapper we install."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from brownout.breaker import Breaker, OperationStats

R = TypeVar("R")


def call(
    breaker: Breaker,
    operation: OperationStats,
    wrapped: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    permit = breaker.acquire()
    started = breaker.clock()
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as error:
        breaker.on_error(permit, started, error, operation)
        raise
    breaker.on_success(permit, started, operation)
    return result


async def call_async(
    breaker: Breaker,
    operation: OperationStats,
    wrapped: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    permit = breaker.acquire()
    started = breaker.clock()
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as error:
        breaker.on_error(permit, started, error, operation)
        raise
    breaker.on_success(permit, started, operation)
    return result
