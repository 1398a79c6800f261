"""Rejected calls leave no reference cycles behind: an outage must not make the garbage
collector work harder (a frame that holds its own exception is such a cycle)."""

from __future__ import annotations

import contextlib
import gc

import pytest

from brownout import Breaker, BreakerConfig, CircuitOpenError
from brownout.testing import FakeClock


@pytest.mark.parametrize("state", ["forced_open", "open"])
def test_rejections_create_no_cyclic_garbage(state: str) -> None:
    clock = FakeClock()
    breaker = Breaker("db", BreakerConfig(consecutive_failures=1), clock=clock)
    if state == "forced_open":
        breaker.force("forced_open")
    else:
        breaker.on_error(breaker.acquire(), clock(), ConnectionError("refused"))

    @breaker
    def query() -> None:
        pass

    def through_acquire() -> None:
        breaker.acquire()

    gc.collect()
    gc.disable()
    try:
        for call in (query, through_acquire):
            for _ in range(1_000):
                with contextlib.suppress(CircuitOpenError):
                    call()
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0
