"""A real breaker against a reference model of its documented semantics, driven by
hypothesis through random interleavings of time, calls, outcomes and operator actions.

The model is deliberately naive: it keeps every call of the current closed period as a
record and recounts the window from scratch, where the breaker keeps rotating buckets,
running totals and a fast path that defers successes. Any disagreement is a bug in one of
them. Config values and clock steps are binary fractions, so both sides do exact float
arithmetic and bucket boundaries cannot fall between them.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from brownout import Breaker, BreakerConfig, BreakerState, CircuitOpenError, Outcome, Transition
from brownout.testing import FakeClock, FixedRandom

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
FORCED_OPEN = BreakerState.FORCED_OPEN
DISABLED = BreakerState.DISABLED
METRICS_ONLY = BreakerState.METRICS_ONLY
ADMIT_ALL = (CLOSED, DISABLED, METRICS_ONLY)

NAME = "inventory-db"
COMPONENT = "database"

Kind = Literal["success", "failure", "ignored"]

# One settings object for this module only (loading a global profile would change every
# other hypothesis test in the run): ~10,000 steps in all, about half a minute here.
STATEFUL = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@st.composite
def configs(draw: st.DrawFn) -> BreakerConfig:
    open_seconds = draw(st.sampled_from([1.0, 2.0, 4.0]))
    return BreakerConfig(
        window=draw(st.sampled_from(["time", "count"])),
        window_size=draw(st.integers(2, 5)),
        bucket_seconds=draw(st.sampled_from([0.5, 1.0, 2.0])),
        failure_rate_threshold=draw(st.sampled_from([25.0, 50.0, 75.0, 100.0])),
        slow_call_rate_threshold=draw(st.sampled_from([25.0, 50.0, 75.0, 100.0])),
        slow_call_seconds=draw(st.sampled_from([0.5, 1.0, 2.0])),
        minimum_calls=draw(st.integers(1, 4)),
        consecutive_failures=draw(st.integers(0, 4)),
        open_seconds=open_seconds,
        open_max_seconds=open_seconds * draw(st.sampled_from([1.0, 2.0, 4.0, 8.0])),
        backoff_multiplier=draw(st.sampled_from([1.0, 1.5, 2.0])),
        jitter=draw(st.sampled_from([0.0, 0.25, 0.5])),
        half_open_permits=draw(st.integers(1, 4)),
        half_open_timeout_seconds=draw(st.sampled_from([1.0, 2.0, 4.0, 8.0])),
    )


@dataclass(frozen=True)
class Call:
    at: float
    failed: bool
    slow: bool


@dataclass(frozen=True)
class Permit:
    value: int
    acquired_at: float
    period: int
    """The model's state period the call was admitted in."""


@dataclass
class Model:
    """The documented semantics, written without looking at how the breaker stores them."""

    config: BreakerConfig
    random_value: float
    now: float
    state: BreakerState = CLOSED
    period: int = 0
    calls: list[Call] = field(default_factory=list)
    consecutive: int = 0
    reopens: int = 0
    open_until: float = 0.0
    probes_left: int = 0
    probe_successes: int = 0
    half_open_deadline: float = 0.0
    last_failure: BaseException | None = None
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    events: list[tuple[BreakerState, BreakerState, float, float | None]] = field(
        default_factory=list
    )

    # -- the window ------------------------------------------------------------------

    def in_window(self) -> list[Call]:
        size = self.config.window_size
        if self.config.window == "count":
            return self.calls[-size:]
        width = self.config.bucket_seconds
        current = math.floor(self.now / width)
        return [call for call in self.calls if current - math.floor(call.at / width) < size]

    def should_trip(self) -> bool:
        limit = self.config.consecutive_failures
        if limit and self.consecutive >= limit:
            return True
        window = self.in_window()
        if len(window) < self.config.minimum_calls:
            return False
        failures = sum(call.failed for call in window)
        slow = sum(call.slow for call in window)
        return 100 * failures >= self.config.failure_rate_threshold * len(
            window
        ) or 100 * slow >= self.config.slow_call_rate_threshold * len(window)

    # -- transitions -----------------------------------------------------------------

    def move(self, to: BreakerState, retry_after: float | None = None) -> None:
        event(f"{self.state.value} -> {to.value}")
        self.events.append((self.state, to, self.now, retry_after))
        self.state = to
        self.period += 1
        if to is HALF_OPEN:
            self.probes_left = self.config.half_open_permits
            self.probe_successes = 0
            self.half_open_deadline = self.now + self.config.half_open_timeout_seconds
        if to in (CLOSED, METRICS_ONLY, DISABLED, FORCED_OPEN):
            self.calls = []
            self.consecutive = 0
        if to is CLOSED:
            self.reopens = 0

    def open(self) -> float:
        config = self.config
        base = config.open_seconds * config.backoff_multiplier**self.reopens
        jittered = base * (1 + config.jitter * (2 * self.random_value - 1))
        seconds = min(jittered, config.open_max_seconds)
        self.reopens += 1
        self.open_until = self.now + seconds
        self.move(OPEN, seconds)
        return seconds

    # -- traffic ---------------------------------------------------------------------

    def acquire(self) -> tuple[bool, float | None]:
        """(admitted, retry_after of the rejection)."""
        if self.state in ADMIT_ALL:
            return True, None
        retry_after = self._refusal()
        if retry_after == "admit":
            return True, None
        self.outcomes[Outcome.REJECTED] += 1
        return False, retry_after

    def _refusal(self) -> float | Literal["admit"] | None:
        if self.state is FORCED_OPEN:
            return None
        if self.state is OPEN:
            if self.now < self.open_until:
                return self.open_until - self.now
            self.move(HALF_OPEN)
        if self.now >= self.half_open_deadline:
            return self.open()
        if self.probes_left:
            self.probes_left -= 1
            return "admit"
        return self.half_open_deadline - self.now

    def complete(
        self, permit: Permit, kind: Kind, duration: float, error: BaseException | None
    ) -> None:
        slow = duration >= self.config.slow_call_seconds
        if kind == "ignored":
            self.outcomes[Outcome.IGNORED] += 1
        elif kind == "failure":
            self.outcomes[Outcome.FAILURE] += 1
            if error is not None:
                self.last_failure = error
        else:
            self.outcomes[Outcome.SLOW if slow else Outcome.SUCCESS] += 1
        if permit.period != self.period:
            return  # stale: admitted in a period that is over
        failed = kind == "failure"
        if self.state in (CLOSED, METRICS_ONLY):
            if kind == "ignored":
                return
            self.consecutive = self.consecutive + 1 if failed else 0
            self.calls.append(Call(self.now, failed, slow))
            if self.state is CLOSED and (failed or slow) and self.should_trip():
                self.open()
        elif self.state is HALF_OPEN:
            if kind == "ignored":
                self.probes_left += 1
            elif failed or slow:
                self.open()
            else:
                self.probe_successes += 1
                if self.probe_successes == self.config.half_open_permits:
                    self.move(CLOSED)

    # -- operator --------------------------------------------------------------------

    def reset(self) -> None:
        self.reopens = 0
        self.calls = []
        self.consecutive = 0
        if self.state is not CLOSED:
            self.move(CLOSED)

    def force(self, target: BreakerState) -> None:
        if target is CLOSED:
            self.reset()
        elif target is not self.state:
            self.move(target)

    def retry_after(self) -> float | Literal["unspecified"] | None:
        if self.state is FORCED_OPEN:
            return None
        if self.state is OPEN:
            return max(0.0, self.open_until - self.now)
        if self.state is HALF_OPEN:
            if self.now >= self.half_open_deadline:
                return "unspecified"  # the next acquire re-opens with a fresh period
            return 0.0 if self.probes_left else self.half_open_deadline - self.now
        return 0.0


class BreakerMachine(RuleBasedStateMachine):
    permits = Bundle("permits")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.seen: list[Transition] = []

    @initialize(config=configs(), random_value=st.sampled_from([0.0, 0.25, 0.5, 0.75]))
    def build(self, config: BreakerConfig, random_value: float) -> None:
        self.breaker = Breaker(
            NAME,
            config,
            component=COMPONENT,
            clock=self.clock,
            random_source=FixedRandom(random_value),
        )
        self.breaker.add_listener(self.seen.append)
        self.model = Model(config, random_value, self.clock())

    # -- rules -----------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 16.0]))
    def advance(self, seconds: float) -> None:
        self.model.now = self.clock.advance(seconds)

    @rule(target=permits)
    def acquire(self) -> Any:
        permit = self.admit()
        return multiple() if permit is None else permit

    @rule(
        kind=st.sampled_from(["success", "failure", "ignored"]),
        extra=st.sampled_from([0.0, 0.25, 1.0, 2.0]),
        style=st.integers(0, 2),
    )
    def call(self, kind: Kind, extra: float, style: int) -> None:
        """Most calls answer before anything else happens."""
        permit = self.admit()
        if permit is not None:
            self.finish(permit, kind, extra, style)

    @rule(
        permit=consumes(permits),
        kind=st.sampled_from(["success", "failure", "ignored"]),
        extra=st.sampled_from([0.0, 0.25, 1.0, 2.0]),
        style=st.integers(0, 2),
    )
    def complete(self, permit: Permit, kind: Kind, extra: float, style: int) -> None:
        """A call admitted earlier answers now, possibly in a later state period."""
        if permit.period != self.model.period:
            event("stale completion")
        self.finish(permit, kind, extra, style)

    @rule(
        action=st.sampled_from(
            [FORCED_OPEN, DISABLED, METRICS_ONLY, CLOSED, "reset", OPEN, HALF_OPEN]
        ),
        roll=st.integers(0, 3),
    )
    def operator(self, action: BreakerState | Literal["reset"], roll: int) -> None:
        if roll:
            return  # operators act rarely; traffic must get the chance to reach half-open
        if action == "reset":
            self.breaker.reset()
            self.model.reset()
        elif action in (OPEN, HALF_OPEN):
            with pytest.raises(ValueError, match="traffic drives it"):
                self.breaker.force(action)
        else:
            # Operators name states as text too (admin API, settings).
            self.breaker.force(action.value.upper() if action is DISABLED else action)
            self.model.force(action)

    # -- the two halves of a call ------------------------------------------------------

    def admit(self) -> Permit | None:
        admitted, retry_after = self.model.acquire()
        try:
            value = self.breaker.acquire()
        except CircuitOpenError as rejection:
            assert not admitted, "the breaker rejected a call the model admits"
            self.check_rejection(rejection, retry_after)
            return None
        assert admitted, f"the breaker admitted a call the model rejects ({retry_after=})"
        if self.model.state is HALF_OPEN:
            event("half-open probe admitted")
        return Permit(value, self.clock(), self.model.period)

    def check_rejection(self, rejection: CircuitOpenError, retry_after: float | None) -> None:
        event(f"rejected in {self.model.state.value}")
        assert rejection.breaker == NAME
        assert rejection.component == COMPONENT
        if retry_after is None:
            assert rejection.retry_after is None
        else:
            assert rejection.retry_after == pytest.approx(retry_after)
        assert rejection.__cause__ is self.model.last_failure

    def finish(self, permit: Permit, kind: Kind, extra: float, style: int) -> None:
        started = permit.acquired_at - extra  # the call began earlier than it asked: slow
        duration = self.clock() - started
        breaker = self.breaker
        error: BaseException | None = None
        if kind == "success":
            if style == 0:
                breaker.on_success(permit.value, started)
            else:
                breaker.on_result(permit.value, started, {"rows": style})
        elif kind == "failure":
            if style == 0:
                error = ConnectionError("connection refused")
                breaker.on_error(permit.value, started, error)
            elif style == 1:
                error = TimeoutError("read timed out")
                breaker.on_failure(permit.value, started, error)
            else:
                breaker.on_failure(permit.value, started)
        elif style == 0:
            breaker.release(permit.value, started)
        elif style == 1:
            breaker.release(permit.value)
            duration = 0.0
        else:
            breaker.on_error(permit.value, started, asyncio.CancelledError())
        self.model.complete(permit, kind, duration, error)

    @precondition(lambda self: self.model.state in (CLOSED, METRICS_ONLY, DISABLED))
    @rule()
    def window_matches(self) -> None:
        # Reading the window folds the fast path's deferred successes, so it is a rule
        # (taken now and then) rather than an invariant that would defeat the fast path.
        window = self.model.in_window()
        calls = len(window)
        assert self.breaker.window_calls == calls
        failures = sum(call.failed for call in window)
        slow = sum(call.slow for call in window)
        assert self.breaker.failure_rate == pytest.approx(100 * failures / calls if calls else 0)
        assert self.breaker.slow_call_rate == pytest.approx(100 * slow / calls if calls else 0)

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def same_state(self) -> None:
        assert self.breaker.state is self.model.state

    @invariant()
    def same_retry_after(self) -> None:
        expected = self.model.retry_after()
        actual = self.breaker.retry_after()
        if expected is None:
            assert actual is None
        elif expected != "unspecified":
            assert actual == pytest.approx(expected)

    @invariant()
    def same_transitions(self) -> None:
        seen = [(e.from_state, e.to_state, e.at, e.retry_after) for e in self.seen]
        assert seen == [
            (before, after, at, pytest.approx(retry) if retry is not None else None)
            for before, after, at, retry in self.model.events
        ]
        assert all(e.breaker == NAME and e.component == COMPONENT for e in self.seen)
        expected_counts = Counter((before, after) for before, after, _, _ in self.model.events)
        assert self.breaker.transition_counts() == dict(expected_counts)
        if self.seen:
            assert self.breaker.state_since == self.seen[-1].at

    @invariant()
    def same_outcome_counts(self) -> None:
        totals = self.breaker.calls_by_outcome()
        for outcome in Outcome:
            assert totals[outcome] == self.model.outcomes[outcome], outcome

    @invariant()
    def same_last_failure(self) -> None:
        assert self.breaker.last_failure is self.model.last_failure


BreakerMachine.TestCase.settings = STATEFUL
TestBreakerAgainstModel = BreakerMachine.TestCase


# -- the smallest cases the machine found, kept as plain examples -----------------------


def fresh(clock: FakeClock, **config: Any) -> Breaker:
    return Breaker(NAME, BreakerConfig(**config), clock=clock, random_source=FixedRandom())


def test_reset_of_a_closed_breaker_forgets_deferred_successes(clock: FakeClock) -> None:
    breaker = fresh(clock, consecutive_failures=0, minimum_calls=4, failure_rate_threshold=25)
    for _ in range(4):
        breaker.on_success(breaker.acquire(), clock())

    breaker.reset()

    assert breaker.window_calls == 0
    breaker.on_failure(breaker.acquire(), clock())  # 1 call < minimum_calls: no verdict yet
    assert breaker.state is CLOSED


def test_reset_of_a_closed_breaker_forgets_consecutive_failures(clock: FakeClock) -> None:
    breaker = fresh(clock, consecutive_failures=3, minimum_calls=100)
    for _ in range(2):
        breaker.on_failure(breaker.acquire(), clock())

    breaker.reset()
    breaker.on_failure(breaker.acquire(), clock())

    assert breaker.state is CLOSED


def test_a_slow_ignored_call_does_not_trip_the_breaker(clock: FakeClock) -> None:
    breaker = fresh(
        clock,
        consecutive_failures=0,
        minimum_calls=3,
        failure_rate_threshold=25,
        slow_call_seconds=1,
    )
    breaker.on_success(breaker.acquire(), clock())
    breaker.on_failure(breaker.acquire(), clock())
    breaker.on_success(breaker.acquire(), clock())
    assert breaker.state is CLOSED  # successes never trip, even with the rate at 33% >= 25%

    # Ignored calls count as neither success nor failure (DESIGN.md), however long they took.
    breaker.release(breaker.acquire(), clock() - 2)

    assert breaker.state is CLOSED
