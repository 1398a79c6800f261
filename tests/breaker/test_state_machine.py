"""The breaker's state machine on a fake clock, one documented rule per test."""

from __future__ import annotations

import pytest

from brownout import Breaker, BreakerConfig, BreakerState, CircuitOpenError, Outcome, Transition
from brownout.testing import FakeClock, FixedRandom


def make(clock: FakeClock, **config: object) -> Breaker:
    return Breaker("dep", BreakerConfig(**config), clock=clock, random_source=FixedRandom(0.5))


def succeed(breaker: Breaker, clock: FakeClock, seconds: float = 0.01) -> None:
    permit = breaker.acquire()
    started = clock()
    clock.advance(seconds)
    breaker.on_success(permit, started)


def fail(breaker: Breaker, clock: FakeClock, error: BaseException | None = None) -> None:
    permit = breaker.acquire()
    started = clock()
    breaker.on_error(permit, started, error or ConnectionError("down"))


def test_consecutive_failures_trip_a_rarely_called_dependency(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=5, minimum_calls=100)
    for _ in range(4):
        fail(breaker, clock)
        clock.advance(30)  # far apart: the window never holds enough calls
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, clock)
    assert breaker.state is BreakerState.OPEN


def test_a_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=3, minimum_calls=100)
    fail(breaker, clock)
    fail(breaker, clock)
    succeed(breaker, clock)
    fail(breaker, clock)
    fail(breaker, clock)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, clock)
    assert breaker.state is BreakerState.OPEN


def test_failure_rate_needs_the_minimum_number_of_calls(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=0, minimum_calls=10, failure_rate_threshold=50)
    for _ in range(5):
        succeed(breaker, clock)
    for _ in range(4):
        fail(breaker, clock)
    assert breaker.state is BreakerState.CLOSED  # 9 calls < 10
    fail(breaker, clock)  # 5 of 10 failed = 50%
    assert breaker.state is BreakerState.OPEN


def test_failure_rate_below_threshold_stays_closed(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=0, minimum_calls=10, failure_rate_threshold=50)
    for _ in range(6):
        succeed(breaker, clock)
    for _ in range(4):
        fail(breaker, clock)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failure_rate == pytest.approx(40.0)


def test_time_window_forgets_old_buckets(clock: FakeClock) -> None:
    breaker = make(
        clock, consecutive_failures=0, minimum_calls=4, window_size=10, bucket_seconds=1.0
    )
    for _ in range(3):
        fail(breaker, clock)
    assert breaker.window_calls == 3
    clock.advance(10.5)  # every bucket aged out
    assert breaker.window_calls == 0
    fail(breaker, clock)
    assert breaker.state is BreakerState.CLOSED  # 1 call in the window, not 4


def test_time_window_rotates_bucket_by_bucket(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=0, minimum_calls=100, window_size=3)
    clock.advance(0.5 - clock() % 1)  # start mid-bucket
    succeed(breaker, clock, 0)
    clock.advance(1)
    succeed(breaker, clock, 0)
    succeed(breaker, clock, 0)
    clock.advance(1)
    fail(breaker, clock)
    assert (breaker.window_calls, breaker.failure_rate) == (4, 25.0)
    clock.advance(1)  # the first bucket (one success) drops out
    assert breaker.window_calls == 3
    clock.advance(1)
    assert breaker.window_calls == 1
    assert breaker.failure_rate == 100.0


def test_count_window_keeps_only_the_last_calls(clock: FakeClock) -> None:
    breaker = make(clock, window="count", window_size=4, minimum_calls=4, consecutive_failures=0)
    fail(breaker, clock)
    fail(breaker, clock)
    for _ in range(4):
        succeed(breaker, clock)
    assert breaker.failure_rate == 0.0  # both failures pushed out
    fail(breaker, clock)
    assert breaker.failure_rate == 25.0
    fail(breaker, clock)
    assert breaker.state is BreakerState.OPEN  # 2 of the last 4


def test_slow_calls_trip_on_the_slow_rate(clock: FakeClock) -> None:
    breaker = make(
        clock,
        consecutive_failures=0,
        minimum_calls=5,
        slow_call_seconds=1.0,
        slow_call_rate_threshold=80,
    )
    succeed(breaker, clock, 0.1)
    for _ in range(3):
        succeed(breaker, clock, 2.0)
    assert breaker.state is BreakerState.CLOSED
    succeed(breaker, clock, 2.0)  # 4 of 5 slow
    assert breaker.state is BreakerState.OPEN
    counts = breaker.calls_by_outcome()
    assert (counts[Outcome.SUCCESS], counts[Outcome.SLOW]) == (1, 4)


def test_open_rejects_with_retry_after_and_chains_the_last_failure(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, open_seconds=10)
    cause = ConnectionError("refused")
    fail(breaker, clock, cause)
    clock.advance(4)
    with pytest.raises(CircuitOpenError) as raised:
        breaker.acquire()
    error = raised.value
    assert (error.breaker, error.component) == ("dep", "external")
    assert error.retry_after == pytest.approx(6.0)
    assert error.__cause__ is cause
    assert "open for another 6.0s" in str(error)
    assert breaker.calls_by_outcome()[Outcome.REJECTED] == 1


def test_open_period_doubles_on_each_reopen_up_to_the_cap(clock: FakeClock) -> None:
    breaker = make(
        clock,
        consecutive_failures=1,
        open_seconds=10,
        backoff_multiplier=2,
        open_max_seconds=35,
        half_open_permits=1,
    )
    periods = []
    fail(breaker, clock)
    for _ in range(4):
        periods.append(breaker.retry_after())
        clock.advance(breaker.retry_after() or 0)
        fail(breaker, clock)  # the half-open probe fails: re-open
    assert periods == [10, 20, 35, 35]


def test_closing_resets_the_backoff(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, open_seconds=10, half_open_permits=1)
    fail(breaker, clock)
    clock.advance(10)
    fail(breaker, clock)
    assert breaker.retry_after() == 20
    clock.advance(20)
    succeed(breaker, clock)
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, clock)
    assert breaker.retry_after() == 10


def test_jitter_scales_the_open_period(clock: FakeClock) -> None:
    low = Breaker("a", BreakerConfig(consecutive_failures=1, jitter=0.2), clock=clock,
                  random_source=FixedRandom(0.0))  # fmt: skip
    high = Breaker("b", BreakerConfig(consecutive_failures=1, jitter=0.2), clock=clock,
                   random_source=FixedRandom(0.999))  # fmt: skip
    fail(low, clock)
    fail(high, clock)
    assert low.retry_after() == pytest.approx(8.0)
    assert high.retry_after() == pytest.approx(11.996)


def test_half_open_admits_n_probes_and_closes_after_n_successes(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, open_seconds=10, half_open_permits=3)
    fail(breaker, clock)
    clock.advance(10)
    permits = [breaker.acquire() for _ in range(3)]
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    for permit in permits[:2]:
        breaker.on_success(permit, clock())
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.on_success(permits[2], clock())
    assert breaker.state is BreakerState.CLOSED


def test_half_open_reopens_on_the_first_failed_probe(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, half_open_permits=3)
    fail(breaker, clock)
    clock.advance(10)
    first, second = breaker.acquire(), breaker.acquire()
    breaker.on_success(first, clock())
    breaker.on_error(second, clock(), TimeoutError())
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == 20


def test_a_slow_probe_reopens(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, half_open_permits=1, slow_call_seconds=1)
    fail(breaker, clock)
    clock.advance(10)
    succeed(breaker, clock, 1.5)
    assert breaker.state is BreakerState.OPEN


def test_half_open_falls_back_to_open_when_probes_do_not_answer(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, half_open_permits=2, half_open_timeout_seconds=30)
    fail(breaker, clock)
    clock.advance(10)
    breaker.acquire()
    breaker.acquire()  # both probes hang
    clock.advance(29)
    with pytest.raises(CircuitOpenError) as raised:
        breaker.acquire()
    assert raised.value.retry_after == pytest.approx(1.0)
    clock.advance(1)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == 20


def test_ignored_outcomes_give_the_half_open_permit_back(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, half_open_permits=1,
                   ignore_exceptions=(KeyError,))  # fmt: skip
    fail(breaker, clock)
    clock.advance(10)
    permit = breaker.acquire()
    breaker.on_error(permit, clock(), KeyError("missing"))
    assert breaker.state is BreakerState.HALF_OPEN
    permit = breaker.acquire()  # the permit came back
    breaker.release(permit)
    succeed(breaker, clock)
    assert breaker.state is BreakerState.CLOSED


def test_stale_completions_cannot_open_or_close(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=2, half_open_permits=1)
    stale = [breaker.acquire() for _ in range(5)]  # admitted while closed
    fail(breaker, clock)
    fail(breaker, clock)
    assert breaker.state is BreakerState.OPEN
    breaker.on_success(stale.pop(), clock())
    assert breaker.state is BreakerState.OPEN
    clock.advance(10)
    probe = breaker.acquire()
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.on_success(stale.pop(), clock())  # does not count as the probe
    breaker.on_error(stale.pop(), clock(), ConnectionError())  # does not re-open
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.on_success(probe, clock())
    assert breaker.state is BreakerState.CLOSED
    for permit in stale:
        breaker.on_error(permit, clock(), ConnectionError())
    assert breaker.state is BreakerState.CLOSED
    # ...but they are still counted as calls.
    assert breaker.calls_by_outcome()[Outcome.FAILURE] == 2 + 1 + 2


def test_forced_open_rejects_until_reset(clock: FakeClock) -> None:
    breaker = make(clock)
    breaker.force("FORCED_OPEN")
    with pytest.raises(CircuitOpenError) as raised:
        breaker.acquire()
    assert raised.value.retry_after is None
    assert "until an operator resets it" in str(raised.value)
    clock.advance(1_000)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    breaker.acquire()


@pytest.mark.parametrize("state", [BreakerState.DISABLED, BreakerState.METRICS_ONLY])
def test_manual_pass_through_states_never_trip(clock: FakeClock, state: BreakerState) -> None:
    breaker = make(clock, consecutive_failures=1, minimum_calls=1)
    breaker.force(state)
    for _ in range(20):
        fail(breaker, clock)
    assert breaker.state is state
    assert breaker.calls_by_outcome()[Outcome.FAILURE] == 20


def test_metrics_only_keeps_the_window(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=0, minimum_calls=1)
    breaker.force("metrics_only")
    fail(breaker, clock)
    succeed(breaker, clock)
    assert breaker.failure_rate == 50.0


def test_force_refuses_traffic_driven_and_unknown_states(clock: FakeClock) -> None:
    breaker = make(clock)
    with pytest.raises(ValueError, match="traffic drives it"):
        breaker.force("open")
    with pytest.raises(ValueError, match="unknown breaker state 'ajar'; use one of: closed"):
        breaker.force("ajar")
    assert breaker.state is BreakerState.CLOSED


def test_listeners_hear_each_transition_and_a_failing_one_breaks_nothing(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = make(clock, consecutive_failures=1, half_open_permits=1)
    heard: list[Transition] = []

    def broken(event: Transition) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(broken)
    breaker.add_listener(heard.append)
    fail(breaker, clock)
    clock.advance(10)
    succeed(breaker, clock)
    assert [(e.from_state.value, e.to_state.value) for e in heard] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert heard[0].reason == "1 consecutive failures"
    assert heard[0].retry_after == 10
    assert "listener" in caplog.text
    assert breaker.transition_counts()[(BreakerState.CLOSED, BreakerState.OPEN)] == 1
    breaker.remove_listener(heard.append)
    breaker.force("disabled")
    assert len(heard) == 3


def test_half_open_ends_the_open_period_and_keeps_the_backoff(clock: FakeClock) -> None:
    breaker = make(clock, consecutive_failures=1, half_open_permits=1)
    assert breaker.half_open() is False  # only an open breaker moves
    fail(breaker, clock)
    assert breaker.half_open() is True
    assert breaker.state is BreakerState.HALF_OPEN
    fail(breaker, clock)  # the probe fails: re-open with the doubled period
    assert breaker.retry_after() == 20


def test_probing_passes_open_breakers_without_moving_them(clock: FakeClock) -> None:
    from brownout.breaker import probing

    breaker = make(clock, consecutive_failures=1, half_open_permits=1)
    fail(breaker, clock)
    with probing():
        succeed(breaker, clock)
        fail(breaker, clock)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(10 - 0.01)
    counts = breaker.calls_by_outcome()
    assert (counts[Outcome.SUCCESS], counts[Outcome.FAILURE]) == (1, 2)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    breaker.force("forced_open")
    with probing(), pytest.raises(CircuitOpenError):
        breaker.acquire()  # an operator's decision is never bypassed


def test_a_trip_names_every_rate_rule_that_fired(clock: FakeClock) -> None:
    breaker = make(
        clock, consecutive_failures=0, minimum_calls=4, failure_rate_threshold=50,
        slow_call_rate_threshold=50, slow_call_seconds=1.0,
    )  # fmt: skip
    heard: list[Transition] = []
    breaker.add_listener(heard.append)
    succeed(breaker, clock)
    for _ in range(3):  # failures that each took 2 s, as timeouts in a blackhole do
        permit = breaker.acquire()
        started = clock()
        clock.advance(2.0)
        breaker.on_failure(permit, started, TimeoutError("no answer"))
    (trip,) = heard
    assert trip.reason == (
        "failure rate 75% >= 50% and slow-call rate 75% >= 50% (slower than 1s) over 4 calls"
    )
