"""The breaker under contention: threads released together by a barrier, hundreds of
asyncio tasks, and a switch interval of a microsecond so the interpreter interleaves
threads as often as it can.

Half-open permits and transitions are taken under the breaker's lock and must be exact
whatever the interleaving. The closed fast path takes no lock by design, so under threads
its counters may lose increments; what must hold there is that nothing raises, the state
stays valid and the window's rates stay within 0-100% and drain back to zero.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from brownout import (
    Breaker,
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitOpenError,
    Outcome,
    Transition,
)
from brownout.breaker.window import TimeWindow
from brownout.testing import FakeClock, FixedRandom

THREADS = 64
ROUNDS = 40
TASKS = 500

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN


@pytest.fixture(autouse=True)
def eager_thread_switching() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def config(**overrides: Any) -> BreakerConfig:
    settings: dict[str, Any] = {
        "consecutive_failures": 1,
        "open_seconds": 5.0,
        "backoff_multiplier": 1.0,
        "half_open_timeout_seconds": 1e6,
        **overrides,
    }
    return BreakerConfig(**settings)


def make(clock: FakeClock, **overrides: Any) -> Breaker:
    return Breaker("shared", config(**overrides), clock=clock, random_source=FixedRandom())


def trip(breaker: Breaker, clock: FakeClock) -> None:
    breaker.on_failure(breaker.acquire(), clock(), ConnectionError("refused"))
    assert breaker.state is OPEN


class Lockstep:
    """``count`` worker threads that run ``work()`` together once per round, released by
    one barrier; the main thread prepares and checks each round while they wait."""

    def __init__(self, count: int, work: Callable[[], None]) -> None:
        self._start = threading.Barrier(count + 1)
        self._done = threading.Barrier(count + 1)
        self._work = work
        self._stopping = False
        self.errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._loop) for _ in range(count)]

    def __enter__(self) -> Lockstep:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping = True
        self._start.wait()
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        while True:
            self._start.wait()
            if self._stopping:
                return
            try:
                self._work()
            except BaseException as error:
                self.errors.append(error)
            self._done.wait()

    def round(self) -> None:
        self._start.wait()
        self._done.wait()
        assert not self.errors, self.errors[:3]


# -- half-open admits exactly its permits ------------------------------------------------


@pytest.mark.parametrize("permits", [1, 3, 8])
def test_half_open_admits_exactly_its_permits_to_64_threads_at_once(permits: int) -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_permits=permits)
    admitted: list[int] = []
    rejected: list[CircuitOpenError] = []

    def probe() -> None:
        try:
            admitted.append(breaker.acquire())
        except CircuitOpenError as error:
            rejected.append(error)

    with Lockstep(THREADS, probe) as threads:
        for number in range(ROUNDS):
            admitted.clear()
            rejected.clear()
            if breaker.state is not OPEN:
                trip(breaker, clock)
            clock.advance(5.0)  # the open period is over: the next acquire goes half-open

            threads.round()

            assert breaker.state is HALF_OPEN
            assert len(admitted) == permits
            assert len(rejected) == THREADS - permits
            assert all(error.retry_after is not None for error in rejected)
            # Alternate endings: every probe succeeds (closed), or every probe fails (the
            # first failure re-opens; the others are answers about a period that is over).
            for permit in admitted:
                if number % 2:
                    breaker.on_success(permit, clock())
                else:
                    breaker.on_failure(permit, clock(), ConnectionError("still down"))
            assert breaker.state is (CLOSED if number % 2 else OPEN)

    counts = breaker.transition_counts()
    assert counts[(OPEN, HALF_OPEN)] == ROUNDS
    assert counts[(HALF_OPEN, CLOSED)] == ROUNDS // 2
    assert counts[(HALF_OPEN, OPEN)] == ROUNDS // 2


def test_half_open_never_has_more_than_its_permits_out_while_threads_churn() -> None:
    clock = FakeClock()
    permits = 3
    breaker = make(clock, half_open_permits=permits)
    trip(breaker, clock)
    clock.advance(5.0)
    guard = threading.Lock()
    out = 0
    most = 0

    def churn() -> None:
        nonlocal out, most
        for _ in range(200):
            try:
                permit = breaker.acquire()
            except CircuitOpenError:
                continue
            with guard:
                out += 1
                most = max(most, out)
            with guard:
                out -= 1
            breaker.release(permit)  # ignored: the permit goes back for another probe

    with Lockstep(THREADS, churn) as threads:
        for _ in range(5):
            threads.round()

    assert 1 <= most <= permits
    assert breaker.state is HALF_OPEN
    # Every released permit came back: exactly `permits` more calls get in, then no more.
    for _ in range(permits):
        breaker.acquire()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()


async def test_half_open_admits_exactly_its_permits_to_500_tasks() -> None:
    clock = FakeClock()
    permits = 3
    breaker = make(clock, half_open_permits=permits)
    trip(breaker, clock)
    clock.advance(5.0)
    answer = asyncio.Event()
    everyone_asked = asyncio.Event()
    inside = 0
    rejected = 0

    def asked() -> None:
        if inside + rejected == TASKS:
            everyone_asked.set()

    async def probe() -> None:
        nonlocal inside, rejected
        try:
            async with breaker:
                inside += 1
                asked()
                await answer.wait()
        except CircuitOpenError:
            rejected += 1
            asked()

    tasks = [asyncio.create_task(probe()) for _ in range(TASKS)]
    await everyone_asked.wait()

    assert inside == permits
    assert rejected == TASKS - permits
    assert breaker.state is HALF_OPEN

    answer.set()
    await asyncio.gather(*tasks)

    assert breaker.state is CLOSED
    assert breaker.transition_counts()[(HALF_OPEN, CLOSED)] == 1


async def test_failing_probes_of_500_tasks_reopen_the_breaker_once() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_permits=5)
    transitions: list[Transition] = []
    breaker.add_listener(transitions.append)
    trip(breaker, clock)
    clock.advance(5.0)
    answer = asyncio.Event()

    async def probe() -> None:
        async with breaker:
            await answer.wait()
            raise ConnectionError("still down")

    tasks = [asyncio.create_task(probe()) for _ in range(TASKS)]
    await asyncio.sleep(0)
    answer.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    kinds = Counter(type(result).__name__ for result in results)
    assert kinds == {"ConnectionError": 5, "CircuitOpenError": TASKS - 5}
    assert [(t.from_state, t.to_state) for t in transitions] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
    ]


# -- decorated functions under load ------------------------------------------------------


class Refused(ConnectionError):
    pass


class NotFound(LookupError):
    pass


def outcome_for(number: int) -> type[Exception] | None:
    """A fixed mix: 1 in 5 calls fails, 1 in 7 (of the rest) answers with an ignored error."""
    if number % 5 == 0:
        return Refused
    if number % 7 == 0:
        return NotFound
    return None


def lenient(clock: Callable[[], float], **overrides: Any) -> Breaker:
    """A breaker that the 20% failure mix never trips."""
    config = BreakerConfig(
        failure_rate_threshold=100,
        consecutive_failures=0,
        ignore_exceptions=(LookupError,),
        **overrides,
    )
    return Breaker("load", config, clock=clock, random_source=FixedRandom())


async def test_decorated_functions_count_every_call_exactly_across_500_tasks() -> None:
    clock = FakeClock()
    # Time moves while calls are in flight (buckets rotate under the fast path), but never
    # by enough to make a call slow.
    breaker = lenient(clock, window_size=4, minimum_calls=10, slow_call_seconds=1e6)
    calls_per_task = 20

    @breaker
    async def fetch(number: int) -> int:
        await asyncio.sleep(0)  # every task yields mid-call, so calls interleave
        error = outcome_for(number)
        if error is not None:
            raise error(number)
        return number

    @breaker
    def parse(number: int) -> int:
        error = outcome_for(number)
        if error is not None:
            raise error(number)
        return number

    async def client(task: int) -> None:
        for step in range(calls_per_task):
            number = step * TASKS + task  # each step's calls interleave: 1 in 5 fails
            for guarded in (fetch, parse):
                try:
                    result = guarded(number)
                    if asyncio.iscoroutine(result):
                        await result
                except (Refused, NotFound):
                    pass
            if step % 4 == 0:
                clock.advance(0.25)

    await asyncio.gather(*(client(task) for task in range(TASKS)))

    numbers = range(TASKS * calls_per_task)
    expected = Counter(outcome_for(number) for number in numbers)
    totals = breaker.calls_by_outcome()
    assert totals[Outcome.FAILURE] == 2 * expected[Refused]
    assert totals[Outcome.IGNORED] == 2 * expected[NotFound]
    assert totals[Outcome.SUCCESS] == 2 * expected[None]
    assert totals[Outcome.SLOW] == totals[Outcome.REJECTED] == 0
    assert breaker.state is CLOSED


def test_threads_hammering_a_decorated_function_keep_the_breaker_consistent() -> None:
    # The clock moves on its own thread, so buckets rotate while calls are being counted.
    clock = FakeClock()
    # Only a corrupted window could show 50 failed calls and no success: 1 in 5 calls
    # fails, and each thread starts at a different point of the mix.
    breaker = lenient(clock, window_size=4, bucket_seconds=0.001, minimum_calls=50)
    calls_per_thread = 300
    moving = True

    def tick() -> None:
        while moving:
            clock.advance(0.0001)

    @breaker
    def query(number: int) -> int:
        error = outcome_for(number)
        if error is not None:
            raise error(number)
        return number

    rates: list[tuple[float, float, int]] = []

    answered_with_error = Counter[type[Exception]]()

    offsets = iter(range(10**6))

    def work() -> None:
        offset = next(offsets)  # the GIL makes next() on a range iterator atomic
        for number in range(offset, offset + calls_per_thread):
            try:
                query(number)
            except (Refused, NotFound) as error:
                answered_with_error[type(error)] += 1
            if number % 50 == 7:
                rates.append((breaker.failure_rate, breaker.slow_call_rate, breaker.window_calls))

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        with Lockstep(16, work) as threads:
            for _ in range(3):
                threads.round()
    finally:
        moving = False
        ticker.join()

    assert breaker.state is CLOSED  # a 20% failure rate never reaches a 100% threshold
    assert breaker.calls_by_outcome()[Outcome.REJECTED] == 0
    assert all(
        0 <= failure <= 100 and 0 <= slow <= 100 and calls >= 0 for failure, slow, calls in rates
    )
    totals = breaker.calls_by_outcome()
    issued = 16 * 3 * calls_per_thread
    assert answered_with_error[Refused] > 0
    assert answered_with_error[NotFound] > 0
    assert 0 < sum(totals.values()) <= issued
    # Rotating bucket by bucket (not one jump, which would clear everything at once) must
    # drain the running totals to exactly zero: nothing drifted while threads raced.
    for _ in range(5):
        clock.advance(0.001)
        assert breaker.window_calls >= 0
    assert breaker.window_calls == 0
    assert breaker.failure_rate == 0


# -- listeners -----------------------------------------------------------------------------


def test_64_threads_failing_at_once_open_the_breaker_exactly_once_per_round() -> None:
    clock = FakeClock()
    registry = BreakerRegistry(clock=clock, random_source=FixedRandom())
    breaker = registry.breaker(
        "orders-db", component="database", config=config(consecutive_failures=3, minimum_calls=3)
    )
    heard: list[Transition] = []
    registry_heard: list[Transition] = []
    breaker.add_listener(heard.append)
    registry.add_listener(registry_heard.append)
    permits: list[int] = []
    grant = threading.Lock()

    def fail() -> None:
        with grant:
            permit = permits.pop()
        breaker.on_error(permit, clock(), Refused("refused"))

    with Lockstep(THREADS, fail) as threads:
        for _ in range(ROUNDS):
            breaker.reset()
            assert breaker.state is CLOSED
            permits[:] = [breaker.acquire() for _ in range(THREADS)]

            threads.round()

            assert breaker.state is OPEN

    opened = [event for event in heard if event.to_state is OPEN]
    assert len(opened) == ROUNDS
    assert all(event.from_state is CLOSED for event in opened)
    assert heard == registry_heard
    counts = breaker.transition_counts()
    assert counts == {(CLOSED, OPEN): ROUNDS, (OPEN, CLOSED): ROUNDS - 1} or counts == {
        (CLOSED, OPEN): ROUNDS,
        (OPEN, CLOSED): ROUNDS,
    }
    assert Counter((e.from_state, e.to_state) for e in heard) == counts


# -- a closed-period success racing a trip ---------------------------------------------


def test_a_success_from_the_closed_period_never_swallows_a_half_open_probe() -> None:
    """A success admitted while closed can finish its bookkeeping after another thread has
    tripped the breaker and a probe has taken it half-open. Whatever it leaves behind must
    not make the probe's success count as a closed-breaker success: the probe must close
    the breaker. (A count window makes the race easy to hit: its buckets never end.)"""
    clock = FakeClock()
    breaker = make(clock, window="count", window_size=5, half_open_permits=1, open_seconds=1.0)
    calling = threading.Event()
    stopping = False
    idle = [threading.Event() for _ in range(4)]

    def succeed_while_allowed(done: threading.Event) -> None:
        while not stopping:
            if not calling.is_set():
                done.set()
                calling.wait(0.01)
                continue
            done.clear()
            try:
                permit = breaker.acquire()
            except CircuitOpenError:
                continue
            breaker.on_success(permit, clock())

    workers = [threading.Thread(target=succeed_while_allowed, args=(done,)) for done in idle]
    for worker in workers:
        worker.start()
    probes = 0
    try:
        # The race hits once in a few thousand cycles on a 2-core machine.
        for _ in range(30_000):
            breaker.reset()
            calling.set()  # successes flow through the closed breaker...
            while breaker.state is CLOSED:  # ...while this thread trips it (a success
                # finishing in between may reset the consecutive count: fail again)
                breaker.on_failure(breaker.acquire(), clock(), ConnectionError("refused"))
            clock.advance(1.0)
            try:
                probe = breaker.acquire()
            except CircuitOpenError:
                calling.clear()
                continue  # a worker's call took the only probe permit; try again
            calling.clear()
            for done in idle:
                assert done.wait(10), "a worker hung"
            if breaker.state is not HALF_OPEN:
                continue  # a worker raced in and completed the half-open period
            breaker.on_success(probe, clock())
            probes += 1
            assert breaker.state is CLOSED, f"probe {probes}'s success was not counted"
    finally:
        stopping = True
        calling.set()
        for worker in workers:
            worker.join()
    assert probes > 0


def test_a_time_window_heals_a_count_lost_to_a_race_at_its_next_rotation() -> None:
    # Calls are added without a lock, so another thread can land between the write to a
    # bucket and the write to the running total. Emulate the total missing that call.
    window = TimeWindow(size=4, bucket_seconds=1.0)
    window.add(0.5, failed=True, slow=False)
    window.add(0.6, failed=False, slow=True)
    window.calls -= 1
    window.failures -= 1

    window.refresh(1.0)
    assert (window.calls, window.failures, window.slow) == (2, 1, 1)

    window.refresh(4.0)  # the first bucket ages out
    assert (window.calls, window.failures, window.slow) == (0, 0, 0)
