"""The circuit breaker: a permission API (acquire, then report the outcome) and the
decorators and context managers built on it.

The common path, a call through a closed breaker, takes no lock and allocates nothing but
the float durations: one attribute check to admit, one clock read on each side, a bisect
and a few integer increments to record. Locks are taken only around transitions and in
half-open, where permits must be counted exactly across threads and tasks.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from brownout.breaker.config import BreakerConfig
from brownout.breaker.errors import CircuitOpenError
from brownout.breaker.events import Listener, Transition, notify
from brownout.breaker.latency import DURATION_BOUNDARIES, OperationStats
from brownout.breaker.outcome import Outcome
from brownout.breaker.state import BreakerState
from brownout.breaker.window import CountWindow, SlidingWindow, TimeWindow

P = ParamSpec("P")
R = TypeVar("R")

Clock = Callable[[], float]
RandomSource = Callable[[], float]

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_DISABLED = BreakerState.DISABLED
_METRICS_ONLY = BreakerState.METRICS_ONLY
_ADMIT_ALL = frozenset({_CLOSED, _DISABLED, _METRICS_ONLY})

# Most calls to a healthy dependency land in the first latency bucket; a comparison is
# cheaper than the bisect.
_FIRST_BOUNDARY = DURATION_BOUNDARIES[0]

_SUCCESS = Outcome.SUCCESS
_FAILURE = Outcome.FAILURE
_SLOW = Outcome.SLOW
_IGNORED = Outcome.IGNORED

# Set while a recovery probe runs: open breakers admit the call with a permit that can
# never change their state (see `probing`).
_probing: ContextVar[bool] = ContextVar("brownout_probing", default=False)
_PROBE_PERMIT = -1

# The "result" of a call reported through on_success(), which no result predicate judges.
_UNJUDGED: Any = object()


@contextlib.contextmanager
def probing() -> Iterator[None]:
    """Let calls made inside this block through open breakers, without letting their
    outcome open or close anything: how a recovery probe asks a down dependency through
    the same instrumented client the app uses. Outcomes still count in the metrics."""
    token = _probing.set(True)
    try:
        yield
    finally:
        _probing.reset(token)


# (permit, started, enclosing entry) for `with breaker:`; a linked list so nesting works.
_Entry = tuple[int, float, Any]


class Breaker:
    """A circuit breaker around one dependency target.

    Use it as a decorator (``@breaker`` on ``def`` or ``async def``), as a context manager
    (``with breaker:`` / ``async with breaker:``), or, from instrumentation code, through
    the permission API::

        permit = breaker.acquire()          # raises CircuitOpenError when not admitted
        started = breaker.clock()
        try:
            result = call()
        except BaseException as error:
            breaker.on_error(permit, started, error)
            raise
        breaker.on_success(permit, started)

    The permit names the breaker's state period the call was admitted in, so a call that
    completes after a transition cannot close or open the breaker.
    """

    __slots__ = (
        "__weakref__",
        "_active",
        "_consecutive",
        "_default_operation",
        "_fast_until",
        "_generation",
        "_half_open_deadline",
        "_half_open_left",
        "_half_open_successes",
        "_last_failure",
        "_listeners",
        "_lock",
        "_open_until",
        "_operations",
        "_passthrough",
        "_pending",
        "_random",
        "_rejected",
        "_reopens",
        "_slow_seconds",
        "_state",
        "_state_since",
        "_transitions",
        "_window",
        "clock",
        "component",
        "config",
        "name",
        "open_error",
    )

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        component: str = "external",
        clock: Clock = time.monotonic,
        random_source: RandomSource = random.random,
        open_error: type[CircuitOpenError] = CircuitOpenError,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ValueError("Breaker name must be a non-empty string")
        if not component or not isinstance(component, str):
            raise ValueError("Breaker component must be a non-empty string")
        if not (isinstance(open_error, type) and issubclass(open_error, CircuitOpenError)):
            raise TypeError("open_error must be a subclass of brownout.CircuitOpenError")
        self.name = name
        self.component = component
        self.config = config = config if config is not None else BreakerConfig()
        self.clock = clock
        self.open_error = open_error
        self._random = random_source
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()
        self._window: SlidingWindow = (
            TimeWindow(config.window_size, config.bucket_seconds)
            if config.window == "time"
            else CountWindow(config.window_size)
        )
        self._slow_seconds = config.slow_call_seconds
        self._state = _CLOSED
        self._passthrough = True
        # Successes through a closed breaker within the current window bucket take the fast
        # path: they are only counted in `_pending`, and folded into the window before the
        # next failure, slow call or bucket rotation, which is exact because they all
        # happened in the current bucket. `_fast_until` is the current bucket's end while
        # closed and -inf otherwise, so one comparison rules the fast path in or out. A
        # breaker that judges results (`failure_result`) never takes it.
        self._pending = 0
        self._fast_until = float("-inf")
        self._generation = 0
        self._state_since = clock()
        self._consecutive = 0
        self._open_until = 0.0
        self._reopens = 0
        self._half_open_left = 0
        self._half_open_successes = 0
        self._half_open_deadline = 0.0
        self._last_failure: BaseException | None = None
        self._rejected = 0
        self._transitions: dict[tuple[BreakerState, BreakerState], int] = {}
        self._default_operation = OperationStats("call")
        self._operations: dict[str, OperationStats] = {"call": self._default_operation}
        self._active: ContextVar[_Entry | None] = ContextVar(f"brownout:{name}", default=None)

    def __repr__(self) -> str:
        return f"<Breaker {self.name!r} component={self.component!r} state={self._state.value}>"

    # -- reading -------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def state_since(self) -> float:
        """The clock reading at the last transition (creation for a fresh breaker)."""
        return self._state_since

    @property
    def last_failure(self) -> BaseException | None:
        return self._last_failure

    @property
    def failure_rate(self) -> float:
        """Failed share of the calls in the window, in percent (0 for an empty window)."""
        window = self._current_window()
        return 100.0 * window.failures / window.calls if window.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Slow share of the calls in the window, in percent (0 for an empty window)."""
        window = self._current_window()
        return 100.0 * window.slow / window.calls if window.calls else 0.0

    @property
    def window_calls(self) -> int:
        return self._current_window().calls

    def _current_window(self) -> SlidingWindow:
        self._fold_pending()
        window = self._window
        window.refresh(self.clock())
        self._fast_until = float("-inf")
        return window

    def _fold_pending(self) -> None:
        pending = self._pending
        if pending:
            self._pending = 0
            self._consecutive = 0
            self._window.add_successes(pending)

    def retry_after(self) -> float | None:
        """Seconds until this breaker admits a call again: 0 when it admits now, ``None``
        when only an operator can change that (forced open)."""
        return self._retry_after_at(self.clock())

    def _retry_after_at(self, now: float) -> float | None:
        state = self._state
        if state is _OPEN:
            return max(0.0, self._open_until - now)
        if state is _HALF_OPEN and self._half_open_left == 0:
            return max(0.0, self._half_open_deadline - now)
        if state is _FORCED_OPEN:
            return None
        return 0.0

    def calls_by_outcome(self) -> dict[Outcome, int]:
        """Every completed or rejected call since creation, by outcome."""
        totals = dict.fromkeys(Outcome, 0)
        for stats in list(self._operations.values()):
            for outcome in (_SUCCESS, _FAILURE, _SLOW, _IGNORED):
                totals[outcome] += stats.by_outcome[outcome].count
        totals[Outcome.REJECTED] = self._rejected
        return totals

    def transition_counts(self) -> dict[tuple[BreakerState, BreakerState], int]:
        return dict(self._transitions)

    def operations(self) -> list[OperationStats]:
        return list(self._operations.values())

    def operation(self, name: str) -> OperationStats:
        """The latency record for one operation name. Keep names bounded: command or
        method names, never keys, SQL text or URLs."""
        stats = self._operations.get(name)
        if stats is None:
            stats = self._operations.setdefault(name, OperationStats(name))
        return stats

    # -- permission API ------------------------------------------------------------------

    def acquire(self) -> int:
        """Admit one call or raise :class:`CircuitOpenError`. Returns the permit to pass
        to exactly one of ``on_success``, ``on_error``, ``on_failure`` or ``release``."""
        if self._passthrough:
            return self._generation
        return self._acquire_slow()

    def _acquire_slow(self) -> int:
        # Rejections raise right here, from an expression: returning the error for the
        # caller to raise measured ~190 ns slower, and binding it to a local would make a
        # frame -> traceback -> error cycle that only the garbage collector frees.
        state = self._state
        if _probing.get() and (state is _OPEN or state is _HALF_OPEN):
            return _PROBE_PERMIT
        if state is _OPEN:
            now = self.clock()
            if now < self._open_until:
                self._rejected += 1
                raise self.open_error(
                    self.name, self.component, self._open_until - now
                ) from self._last_failure
        elif state is _FORCED_OPEN:
            self._rejected += 1
            raise self.open_error(self.name, self.component, None) from self._last_failure
        else:
            now = self.clock()
        events: list[Transition] = []
        permit = -1
        with self._lock:
            if self._state is _OPEN and now >= self._open_until:
                events.append(self._transition(_HALF_OPEN, now, "open period elapsed"))
            state = self._state
            if state is _HALF_OPEN:
                if now >= self._half_open_deadline:
                    events.append(self._open(now, "half-open probes did not answer in time"))
                elif self._half_open_left > 0:
                    self._half_open_left -= 1
                    permit = self._generation
            elif state in _ADMIT_ALL:
                permit = self._generation
            retry_after = self._retry_after_at(now)
        for event in events:
            notify(self._listeners, event)
        if permit < 0:
            self._rejected += 1
            raise self.open_error(self.name, self.component, retry_after) from self._last_failure
        return permit

    def on_success(
        self, permit: int, started: float, operation: OperationStats | None = None
    ) -> None:
        """The call returned normally."""
        self._succeeded(permit, started, self.clock(), _UNJUDGED, operation)

    def on_error(
        self,
        permit: int,
        started: float,
        error: BaseException,
        operation: OperationStats | None = None,
    ) -> None:
        """The call raised ``error``; the config decides whether that is a failure."""
        now = self.clock()
        failed = self.config.classify_error(error)
        self._complete(permit, now, now - started, failed, operation, error if failed else None)

    def on_failure(
        self,
        permit: int,
        started: float,
        error: BaseException | None = None,
        operation: OperationStats | None = None,
    ) -> None:
        """The call failed in a way only the caller can see (a 5xx answer, a bad result)."""
        now = self.clock()
        self._complete(permit, now, now - started, True, operation, error)

    def on_result(
        self, permit: int, started: float, result: object, operation: OperationStats | None = None
    ) -> None:
        """The call returned ``result``; ``config.failure_result`` may call it a failure."""
        predicate = self.config.failure_result
        if predicate is not None and predicate(result):
            self.on_failure(permit, started, None, operation)
        else:
            self.on_success(permit, started, operation)

    def release(
        self, permit: int, started: float | None = None, operation: OperationStats | None = None
    ) -> None:
        """Count the call as neither success nor failure and give its permit back."""
        now = self.clock()
        duration = 0.0 if started is None else now - started
        self._complete(permit, now, duration, None, operation, None)

    def _complete(
        self,
        permit: int,
        now: float,
        duration: float,
        failed: bool | None,
        operation: OperationStats | None,
        error: BaseException | None,
    ) -> None:
        slow = duration >= self._slow_seconds
        if failed is None:
            outcome = _IGNORED
        elif failed:
            outcome = _FAILURE
            if error is not None:
                self._last_failure = error
        else:
            outcome = _SLOW if slow else _SUCCESS
        (operation or self._default_operation).by_outcome[outcome].record(duration)
        if permit != self._generation:
            return  # admitted before a transition: evidence about a period that is over
        state = self._state
        if state is _CLOSED or state is _METRICS_ONLY:
            self._fold_pending()
            window = self._window
            evidence = failed is not None and (failed or slow)
            if failed is None:
                window.refresh(now)
            else:
                self._consecutive = self._consecutive + 1 if failed else 0
                window.add(now, failed, slow)
            if state is _CLOSED:
                reason = self._trip_reason() if evidence else None
                if reason is None:
                    self._arm_fast_path(permit, window.bucket_end())
                else:
                    self._trip(permit, now, reason)
        elif state is _HALF_OPEN:
            self._complete_probe(permit, now, failed, slow)

    def _arm_fast_path(self, permit: int, until: float) -> None:
        # Under the lock: another thread may have tripped the breaker since this call read
        # the state, and re-arming the fast path then would let a half-open probe's
        # success pass as a closed-breaker success.
        with self._lock:
            if (
                permit == self._generation
                and self._state is _CLOSED
                and self.config.failure_result is None
            ):
                self._fast_until = until

    def _trip_reason(self) -> str | None:
        config = self.config
        limit = config.consecutive_failures
        if limit and self._consecutive >= limit:
            return f"{self._consecutive} consecutive failures"
        window = self._window
        calls = window.calls
        if calls < config.minimum_calls:
            return None
        # Name every rule that fired: a blackholed dependency fails slowly, and an operator
        # reading the transition should see both.
        fired = []
        if window.failures * 100 >= config.failure_rate_threshold * calls:
            rate = 100 * window.failures / calls
            fired.append(f"failure rate {rate:.0f}% >= {config.failure_rate_threshold:g}%")
        if window.slow * 100 >= config.slow_call_rate_threshold * calls:
            rate = 100 * window.slow / calls
            fired.append(
                f"slow-call rate {rate:.0f}% >= {config.slow_call_rate_threshold:g}% "
                f"(slower than {config.slow_call_seconds:g}s)"
            )
        return f"{' and '.join(fired)} over {calls} calls" if fired else None

    def _trip(self, permit: int, now: float, reason: str) -> None:
        with self._lock:
            if permit != self._generation or self._state is not _CLOSED:
                return
            event = self._open(now, reason)
        notify(self._listeners, event)

    def _complete_probe(self, permit: int, now: float, failed: bool | None, slow: bool) -> None:
        with self._lock:
            if permit != self._generation or self._state is not _HALF_OPEN:
                return
            if failed is None:
                self._half_open_left += 1
                return
            if failed or slow:
                reason = "half-open probe failed" if failed else "half-open probe was slow"
                event = self._open(now, reason)
            else:
                self._half_open_successes += 1
                if self._half_open_successes < self.config.half_open_permits:
                    return
                count = self._half_open_successes
                event = self._transition(_CLOSED, now, f"{count} half-open probes succeeded")
        notify(self._listeners, event)

    # -- transitions (callers hold self._lock) --------------------------------------------

    def _open(self, now: float, reason: str) -> Transition:
        config = self.config
        period = config.open_seconds * config.backoff_multiplier**self._reopens
        if config.jitter:
            period *= 1.0 + config.jitter * (2.0 * self._random() - 1.0)
        period = min(period, config.open_max_seconds)
        self._reopens += 1
        self._open_until = now + period
        return self._transition(_OPEN, now, reason, retry_after=period)

    def _transition(
        self, to: BreakerState, now: float, reason: str, retry_after: float | None = None
    ) -> Transition:
        previous = self._state
        self._generation += 1
        self._state = to
        self._state_since = now
        self._passthrough = to in _ADMIT_ALL
        self._fast_until = float("-inf")
        self._pending = 0
        self._consecutive = 0
        if to is _HALF_OPEN:
            self._half_open_left = self.config.half_open_permits
            self._half_open_successes = 0
            self._half_open_deadline = now + self.config.half_open_timeout_seconds
        elif to is not _OPEN:
            self._forget_evidence()
            if to is _CLOSED:
                self._reopens = 0
        key = (previous, to)
        self._transitions[key] = self._transitions.get(key, 0) + 1
        return Transition(self.name, self.component, previous, to, now, reason, retry_after)

    def _forget_evidence(self) -> None:
        self._window.clear()
        self._pending = 0
        self._consecutive = 0
        self._fast_until = float("-inf")

    # -- operator controls ---------------------------------------------------------------

    def force(self, state: BreakerState | str, reason: str = "forced by operator") -> None:
        """Put the breaker in ``state`` now. Forced open rejects every call; disabled admits
        every call and never trips; metrics-only admits every call but keeps counting."""
        target = BreakerState.parse(state)
        if target is _OPEN or target is _HALF_OPEN:
            raise ValueError(
                f"cannot force state {target.value!r}: traffic drives it; force one of "
                "'forced_open', 'disabled', 'metrics_only', or 'closed' (same as reset())"
            )
        if target is _CLOSED:
            self.reset(reason)
            return
        with self._lock:
            if self._state is target:
                return
            event = self._transition(target, self.clock(), reason)
        notify(self._listeners, event)

    def half_open(self, reason: str = "recovery probe succeeded") -> bool:
        """End the open period now: the next calls are the half-open probes. Only an OPEN
        breaker moves; returns whether it did. Keeps the backoff history, so a dependency
        that fails the probes again stays open longer."""
        with self._lock:
            if self._state is not _OPEN:
                return False
            event = self._transition(_HALF_OPEN, self.clock(), reason)
        notify(self._listeners, event)
        return True

    def reset(self, reason: str = "reset by operator") -> None:
        """Back to closed with an empty window and no backoff history."""
        with self._lock:
            self._reopens = 0
            if self._state is _CLOSED:
                self._forget_evidence()
                return
            event = self._transition(_CLOSED, self.clock(), reason)
        notify(self._listeners, event)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(transition)`` after every state change. It runs on the thread
        that caused the change, so keep it quick; exceptions it raises are logged."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item != listener)

    # -- running one call ----------------------------------------------------------------

    def run(
        self,
        func: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        operation: OperationStats | None = None,
    ) -> R:
        """Call ``func(*args, **kwargs)`` under this breaker and return its result: the
        permission API in one call, for instrumentation wrappers, which get the arguments
        already packed. Raises :class:`CircuitOpenError` when the call is not admitted."""
        permit = self._generation if self._passthrough else self._acquire_slow()
        clock = self.clock
        started = clock()
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            self.on_error(permit, started, error, operation)
            raise
        self._succeeded(permit, started, clock(), result, operation)
        return result

    async def run_async(
        self,
        func: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        operation: OperationStats | None = None,
    ) -> R:
        """:meth:`run` for a coroutine function: awaits ``func(*args, **kwargs)``."""
        permit = self._generation if self._passthrough else self._acquire_slow()
        clock = self.clock
        started = clock()
        try:
            result = await func(*args, **kwargs)
        except BaseException as error:
            self.on_error(permit, started, error, operation)
            raise
        self._succeeded(permit, started, clock(), result, operation)
        return result

    def _succeeded(
        self,
        permit: int,
        started: float,
        now: float,
        result: object,
        operation: OperationStats | None,
    ) -> None:
        duration = now - started
        if now < self._fast_until and duration < self._slow_seconds and permit == self._generation:
            histogram = (operation or self._default_operation).success
            if duration <= _FIRST_BOUNDARY:
                histogram.first_count += 1
                histogram.first_sum += duration
            else:
                histogram.record(duration)
            self._pending += 1
        else:
            self._finish(permit, now, duration, result, operation or self._default_operation)

    # -- decorator -----------------------------------------------------------------------

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...

    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Guard every call of ``func`` (a ``def`` or ``async def`` function or method)."""
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"cannot guard generator function {func.__qualname__}: its body runs after "
                "the call returns; guard the code that iterates it instead"
            )
        breaker = self
        clock = self.clock
        slow_seconds = self._slow_seconds
        operation = self.operation(getattr(func, "__qualname__", None) or "call")
        success = operation.success

        # The sync wrapper inlines the success path of _succeeded(): a method call costs
        # ~20-70 ns, a large share of the budget for a guarded call. Around an await it
        # does not matter, so the async wrapper calls it.
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                permit = breaker._generation if breaker._passthrough else breaker._acquire_slow()
                started = clock()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as error:
                    breaker.on_error(permit, started, error, operation)
                    raise
                breaker._succeeded(permit, started, clock(), result, operation)
                return result

            return guarded_async

        @functools.wraps(func)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            permit = breaker._generation if breaker._passthrough else breaker._acquire_slow()
            started = clock()
            try:
                result = func(*args, **kwargs)
            except BaseException as error:
                breaker.on_error(permit, started, error, operation)
                raise
            now = clock()
            duration = now - started
            if (
                now < breaker._fast_until
                and duration < slow_seconds
                and permit == breaker._generation
            ):
                if duration <= _FIRST_BOUNDARY:
                    success.first_count += 1
                    success.first_sum += duration
                else:
                    success.record(duration)
                breaker._pending += 1
            else:
                breaker._finish(permit, now, duration, result, operation)
            return result

        return guarded

    def _finish(
        self, permit: int, now: float, duration: float, result: object, operation: OperationStats
    ) -> None:
        predicate = self.config.failure_result
        failed = predicate is not None and result is not _UNJUDGED and predicate(result)
        self._complete(permit, now, duration, failed, operation, None)

    # -- context managers ----------------------------------------------------------------

    def __enter__(self) -> Breaker:
        permit = self.acquire()
        self._active.set((permit, self.clock(), self._active.get()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        entry = self._active.get()
        if entry is None:
            raise RuntimeError(f"breaker {self.name!r} exited without a matching enter")
        permit, started, enclosing = entry
        self._active.set(enclosing)
        if exc is None:
            self.on_success(permit, started)
        else:
            self.on_error(permit, started, exc)

    async def __aenter__(self) -> Breaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)
