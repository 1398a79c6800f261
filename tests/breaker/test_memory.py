"""Memory stays flat whatever the call volume or outage length (DESIGN.md: "zero bytes
retained per rejection", "constant memory under any call volume and outage length").

tracemalloc attributes every live block to the line that allocated it, so comparing a
snapshot taken after a warm-up with one taken after a million more calls shows exactly
what those calls left behind: a rejected call that kept its exception, traceback or a
growing counter around would show up as megabytes here.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import brownout
from brownout import Breaker, BreakerConfig, BreakerState, CircuitOpenError
from brownout.testing import FakeClock, FixedRandom

CALLS = 1_000_000
# The half-open rejection takes the lock and builds the events list: ~25 us a call under
# tracemalloc on this machine, so it runs a fifth as many to keep the module near 30 s.
FEWER_CALLS = 200_000
WARM_UP = 10_000
# A few KB: room for tracemalloc's own bookkeeping and interned ints, far below the
# tens of megabytes a million retained exceptions or list entries would take.
RETAINED_LIMIT = 4096

BROWNOUT_FILES = os.path.join(os.path.dirname(brownout.__file__), "*")
NOISE = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def make_breaker(clock: FakeClock, **overrides: Any) -> Breaker:
    config = BreakerConfig(
        consecutive_failures=1,
        open_seconds=1e6,
        open_max_seconds=1e6,
        half_open_timeout_seconds=1e7,
        **overrides,
    )
    return Breaker("memory", config, component="cache", clock=clock, random_source=FixedRandom())


def trip(breaker: Breaker, clock: FakeClock) -> None:
    permit = breaker.acquire()
    breaker.on_error(permit, clock(), ConnectionError("refused"))
    assert breaker.state is BreakerState.OPEN


@pytest.fixture
def tracing() -> Iterator[None]:
    gc.collect()
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def retained(run: Callable[[int], None], calls: int) -> tuple[int, int]:
    """Net bytes still allocated after ``run(calls)``: (by brownout's code, overall)."""
    run(WARM_UP)
    gc.collect()
    before = tracemalloc.take_snapshot().filter_traces(NOISE)
    run(calls)
    gc.collect()
    after = tracemalloc.take_snapshot().filter_traces(NOISE)
    overall = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    ours = (tracemalloc.Filter(True, BROWNOUT_FILES),)
    by_brownout = sum(
        stat.size_diff
        for stat in after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename")
    )
    return by_brownout, overall


def open_breaker(clock: FakeClock) -> Callable[[int], None]:
    breaker = make_breaker(clock)
    trip(breaker, clock)
    acquire = breaker.acquire

    def run(count: int) -> None:
        rejected = 0
        for _ in range(count):
            try:
                acquire()
            except CircuitOpenError:
                rejected += 1
        assert rejected == count

    return run


def forced_open_decorated(clock: FakeClock) -> Callable[[int], None]:
    breaker = make_breaker(clock)
    trip(breaker, clock)  # so every rejection chains a real failure as its cause
    breaker.force(BreakerState.FORCED_OPEN)

    @breaker
    def call() -> int:
        return 1

    def run(count: int) -> None:
        rejected = 0
        for _ in range(count):
            try:
                call()
            except CircuitOpenError:
                rejected += 1
        assert rejected == count

    return run


def half_open_full_context_manager(clock: FakeClock) -> Callable[[int], None]:
    breaker = make_breaker(clock, half_open_permits=1)
    trip(breaker, clock)
    clock.advance(1e6)
    probe = breaker.acquire()  # the only half-open permit, never answered
    assert breaker.state is BreakerState.HALF_OPEN
    assert probe >= 0

    def run(count: int) -> None:
        rejected = 0
        for _ in range(count):
            try:
                with breaker:
                    pass
            except CircuitOpenError:
                rejected += 1
        assert rejected == count

    return run


@pytest.mark.usefixtures("tracing")
@pytest.mark.parametrize(
    ("rejecting", "calls"),
    [
        pytest.param(open_breaker, CALLS, id="open-acquire"),
        pytest.param(forced_open_decorated, CALLS, id="forced-open-decorator"),
        pytest.param(half_open_full_context_manager, FEWER_CALLS, id="half-open-full-with"),
    ],
)
def test_a_million_rejected_calls_retain_nothing(
    rejecting: Callable[[FakeClock], Callable[[int], None]], calls: int, clock: FakeClock
) -> None:
    run = rejecting(clock)

    by_brownout, overall = retained(run, calls)

    assert by_brownout <= RETAINED_LIMIT, f"brownout kept {by_brownout} B after {calls} rejections"
    assert overall <= RETAINED_LIMIT, f"{overall} B retained after {calls} rejections"


@pytest.mark.usefixtures("tracing")
@pytest.mark.parametrize(
    ("window", "calls"), [("time", CALLS), ("count", FEWER_CALLS)], ids=["time", "count"]
)
def test_a_million_successful_calls_over_simulated_minutes_hold_constant_memory(
    window: str, calls: int, clock: FakeClock
) -> None:
    breaker = make_breaker(clock, window=window, window_size=10, bucket_seconds=1.0)
    advance = clock.advance

    @breaker
    def call() -> int:
        return 1

    def run(count: int) -> None:
        # 0.05 s every 100 calls: a million calls span 500 simulated seconds, so the time
        # window rotates through its buckets fifty times over.
        for done in range(0, count, 100):
            for _ in range(min(100, count - done)):
                call()
            advance(0.05)

    by_brownout, overall = retained(run, calls)

    assert breaker.state is BreakerState.CLOSED
    assert breaker.window_calls > 0
    assert by_brownout <= RETAINED_LIMIT, f"brownout kept {by_brownout} B after {calls} calls"
    assert overall <= RETAINED_LIMIT, f"{overall} B retained after {calls} calls"
