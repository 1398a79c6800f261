"""Guarding real code: decorators, context managers, classification, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from brownout import Breaker, BreakerConfig, BreakerState, CircuitOpenError, Outcome
from brownout.testing import FakeClock, FixedRandom


def make(clock: FakeClock, **config: object) -> Breaker:
    return Breaker("dep", BreakerConfig(**config), clock=clock, random_source=FixedRandom())


def test_decorated_function_passes_arguments_and_results(clock: FakeClock) -> None:
    breaker = make(clock)

    @breaker
    def add(a: int, b: int = 0) -> int:
        """Adds."""
        return a + b

    assert add(1, b=2) == 3
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert breaker.calls_by_outcome()[Outcome.SUCCESS] == 1


def test_decorated_method_binds_self(clock: FakeClock) -> None:
    breaker = make(clock)

    class Repository:
        def __init__(self) -> None:
            self.rows = [1, 2]

        @breaker
        def count(self) -> int:
            return len(self.rows)

    assert Repository().count() == 2
    assert [op.name for op in breaker.operations()] == [
        "call",
        "test_decorated_method_binds_self.<locals>.Repository.count",
    ]


def test_decorator_trips_and_then_fails_fast_without_calling(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=2)
    calls = 0

    @breaker
    def flaky() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("refused")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            flaky()
    with pytest.raises(CircuitOpenError) as raised:
        flaky()
    assert calls == 2
    assert isinstance(raised.value.__cause__, ConnectionError)


async def test_async_decorator(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1)

    @breaker
    async def fetch(key: str) -> str:
        await asyncio.sleep(0)
        if key == "bad":
            raise TimeoutError(key)
        return key.upper()

    assert await fetch("a") == "A"
    with pytest.raises(TimeoutError):
        await fetch("bad")
    with pytest.raises(CircuitOpenError):
        await fetch("a")


def test_generator_functions_are_refused(clock: FakeClock) -> None:
    breaker = make(clock)

    def rows():  # type: ignore[no-untyped-def]
        yield 1

    with pytest.raises(TypeError, match="cannot guard generator function"):
        breaker(rows)


def test_sync_context_manager_records_success_and_failure(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=2)
    with breaker:
        clock.advance(0.2)
    with pytest.raises(ConnectionError), breaker:
        raise ConnectionError

    # Nested use of the same breaker in one context keeps each call's own permit.
    def nested() -> None:
        with breaker:
            with breaker:
                pass
            raise ConnectionError

    with pytest.raises(ConnectionError):
        nested()
    counts = breaker.calls_by_outcome()
    assert (counts[Outcome.SUCCESS], counts[Outcome.FAILURE]) == (2, 2)
    assert breaker.state is BreakerState.CLOSED  # the inner success broke the streak
    breaker.force("forced_open")
    with pytest.raises(CircuitOpenError), breaker:
        pytest.fail("the body must not run while open")


async def test_async_context_manager_is_per_task(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=100)
    gate = asyncio.Event()

    async def work(fail: bool) -> None:
        async with breaker:
            await gate.wait()
            if fail:
                raise ConnectionError

    tasks = [asyncio.create_task(work(i % 2 == 0)) for i in range(10)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, ConnectionError) for r in results) == 5
    counts = breaker.calls_by_outcome()
    assert (counts[Outcome.SUCCESS], counts[Outcome.FAILURE]) == (5, 5)


async def test_cancellation_is_never_a_failure_and_releases_the_probe(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, half_open_permits=1)

    @breaker
    async def slow() -> None:
        await asyncio.sleep(3600)

    breaker.on_error(breaker.acquire(), clock(), ConnectionError())
    clock.advance(10)
    task = asyncio.create_task(slow())  # takes the only half-open permit
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.calls_by_outcome()[Outcome.IGNORED] == 1
    breaker.on_success(breaker.acquire(), clock())  # the permit came back
    assert breaker.state is BreakerState.CLOSED


@pytest.mark.parametrize("error", [KeyboardInterrupt(), GeneratorExit(), SystemExit(1)])
def test_process_level_exits_are_never_failures(clock: FakeClock, error: BaseException) -> None:
    breaker = make(clock, consecutive_failures=1)
    breaker.on_error(breaker.acquire(), clock(), error)
    assert breaker.state is BreakerState.CLOSED


class Refused(ConnectionError):
    pass


def test_ignore_wins_over_record_including_subclasses(clock: FakeClock) -> None:
    breaker = make(
        clock,
        consecutive_failures=1,
        record_exceptions=(ConnectionError,),
        ignore_exceptions=(Refused,),
    )
    breaker.on_error(breaker.acquire(), clock(), Refused())
    assert breaker.state is BreakerState.CLOSED
    reverse = make(
        clock,
        consecutive_failures=1,
        record_exceptions=(Refused,),
        ignore_exceptions=(ConnectionError,),
    )
    reverse.on_error(reverse.acquire(), clock(), Refused())
    assert reverse.state is BreakerState.CLOSED
    assert reverse.calls_by_outcome()[Outcome.IGNORED] == 1


def test_errors_outside_the_record_list_are_ignored(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, record_exceptions=(ConnectionError,))
    breaker.on_error(breaker.acquire(), clock(), ValueError("bad input"))
    assert breaker.state is BreakerState.CLOSED
    breaker.on_error(breaker.acquire(), clock(), ConnectionResetError())
    assert breaker.state is BreakerState.OPEN


def test_predicates_classify_errors(clock: FakeClock) -> None:
    def is_5xx(error: BaseException) -> bool:
        return getattr(error, "status", 0) >= 500

    class HTTPError(Exception):
        def __init__(self, status: int) -> None:
            self.status = status

    breaker = make(
        clock,
        consecutive_failures=1,
        record_exceptions=(),
        record_when=is_5xx,
        ignore_when=lambda e: getattr(e, "status", 0) == 503,
    )
    for status in (404, 503):
        breaker.on_error(breaker.acquire(), clock(), HTTPError(status))
    assert breaker.state is BreakerState.CLOSED
    breaker.on_error(breaker.acquire(), clock(), HTTPError(500))
    assert breaker.state is BreakerState.OPEN


def test_result_predicate_counts_bad_results_as_failures(clock: FakeClock) -> None:
    breaker = make(
        clock, consecutive_failures=2, failure_result=lambda r: r.get("status") == "error"
    )

    @breaker
    def call(status: str) -> dict[str, str]:
        return {"status": status}

    call("ok")
    call("error")
    assert breaker.state is BreakerState.CLOSED
    call("error")
    assert breaker.state is BreakerState.OPEN


def test_custom_open_error_is_also_the_native_error(clock: FakeClock) -> None:
    class NativeConnectionError(Exception):
        pass

    class OpenAndNative(CircuitOpenError, NativeConnectionError):
        pass

    breaker = Breaker("db", BreakerConfig(consecutive_failures=1), component="database",
                      clock=clock, open_error=OpenAndNative)  # fmt: skip
    breaker.on_error(breaker.acquire(), clock(), ConnectionError())
    with pytest.raises(NativeConnectionError) as raised:
        breaker.acquire()
    assert isinstance(raised.value, CircuitOpenError)
    assert raised.value.component == "database"


def test_open_error_must_be_a_circuit_open_error() -> None:
    with pytest.raises(TypeError, match=r"subclass of brownout\.CircuitOpenError"):
        Breaker("x", open_error=ConnectionError)  # type: ignore[arg-type]


def test_durations_land_in_the_latency_histogram(clock: FakeClock) -> None:
    breaker = make(clock, slow_call_seconds=1.0)

    @breaker
    def work(seconds: float) -> None:
        clock.advance(seconds)

    work(0.003)
    work(0.2)
    work(2.0)
    (stats,) = [op for op in breaker.operations() if op.name.endswith("work")]
    success = stats.by_outcome[Outcome.SUCCESS]
    slow = stats.by_outcome[Outcome.SLOW]
    assert success.count == 2
    assert sum(success.bucket_sums()) == pytest.approx(0.203)
    assert success.bucket_counts()[0] == 1  # <= 5 ms
    assert success.bucket_counts()[6] == 1  # (0.1, 0.25]
    assert slow.count == 1


def test_run_calls_with_packed_arguments_and_judges_the_outcome(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=2, failure_result=lambda result: result is None)
    stats = breaker.operation("lookup")

    def lookup(key: str, *, default: str | None = None) -> str | None:
        clock.advance(0.02)
        return {"a": "1"}.get(key, default)

    assert breaker.run(lookup, ("a",), {}, stats) == "1"
    assert breaker.run(lookup, ("b",), {"default": "0"}, stats) == "0"
    assert breaker.run(lookup, ("b",), {}, stats) is None  # the result predicate: a failure
    with pytest.raises(ConnectionError):
        breaker.run(lambda: (_ for _ in ()).throw(ConnectionError("down")), (), {})
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        breaker.run(lookup, ("a",), {}, stats)
    assert stats.by_outcome[Outcome.SUCCESS].count == 2
    assert stats.by_outcome[Outcome.FAILURE].count == 1
    assert sum(stats.by_outcome[Outcome.SUCCESS].bucket_sums()) == pytest.approx(0.04)


async def test_run_async_awaits_and_counts_like_run(clock: FakeClock) -> None:
    breaker = make(clock)

    async def fetch(key: str) -> str:
        await asyncio.sleep(0)
        clock.advance(0.01)
        return key.upper()

    assert await breaker.run_async(fetch, ("k",), {}) == "K"
    task = asyncio.ensure_future(breaker.run_async(asyncio.sleep, (10,), {}))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    counts = breaker.calls_by_outcome()
    assert (counts[Outcome.SUCCESS], counts[Outcome.IGNORED]) == (1, 1)
