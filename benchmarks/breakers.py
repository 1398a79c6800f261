"""Breaker overhead, side by side with peers and baselines, measured in one run.

Run from the repository root::

    .venv/bin/python benchmarks/breakers.py            # full run, about a minute
    .venv/bin/python benchmarks/breakers.py --quick    # smoke run, a few seconds
    .venv/bin/python benchmarks/breakers.py --json results.json

Every row times a loop of calls to a trivial function through one guard and reports the
best (minimum) ns per call over several interleaved samples, with the garbage collector off
during each sample. "Added" is that minus the matching baseline measured in the same run
(the bare call for sync and rejection rows, the bare ``await`` for async rows), so the
loop's own cost cancels out. Budgets from DESIGN.md are printed as written and scaled by
how much slower this machine runs circuitbreaker than the design's reference machine did.

The script is a report: budgets never fail it. It exits non-zero only when a benchmark
could not run or did not guard the call the way its row claims (say, a rejection row whose
breaker let the call through).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import aiobreaker  # type: ignore[import-untyped]
import circuitbreaker  # type: ignore[import-untyped]
import purgatory
import pybreaker
import wrapt
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader

import brownout
from brownout.telemetry import REPLAY_SHARE_OF_TIMEOUT, BreakerMetrics

T = TypeVar("T")
Runner = Callable[[int], int]
"""Runs ``n`` guarded calls and returns the elapsed nanoseconds."""

SYNC, ASYNC, REJECT = "sync", "async", "reject"
BARE_SYNC = "bare call, sync"
BARE_ASYNC = "bare call, async (await)"
RAISE_CATCH = "raise+catch, one frame"
CB_SYNC = "circuitbreaker closed, sync"
CB_ASYNC = "circuitbreaker closed, async"
CB_REJECT = "circuitbreaker rejection, open"
PB_SYNC = "pybreaker closed, sync"
METRICS_ROW = "brownout closed + OTel metrics, sync"
NAIVE_ROW = "naive wrapt+pybreaker+OTel, sync"
MEMORY_CONTROL = "bare calls (control)"

# DESIGN.md "Performance budgets" and the peer figures it quotes from its reference machine.
DESIGN_CIRCUITBREAKER_ADDED_NS = 474.0
DESIGN_PYBREAKER_ADDED_NS = 995.0
NAIVE_STACK_DESIGN_NS = 12_300.0
BUDGET_SYNC_NS = 350.0
BUDGET_ASYNC_NS = 450.0
BUDGET_REJECT_NS = 600.0
BUDGET_METRICS_NS = 1_500.0

METRICS_ROW_MAX_ITERATIONS = 50_000
SDK_COLLECT_TIMEOUT_NS = 10e9  # MetricReader.collect(timeout_millis=10_000)

OPEN_FOR_A_LONG_TIME = brownout.BreakerConfig(open_seconds=1e6, open_max_seconds=1e6)


class BenchmarkError(Exception):
    """A benchmark did not do what its row says it measures."""


@dataclass
class Case:
    """What a row times, and a check that it still guards the call the way it claims."""

    run: Runner
    verify: Callable[[], None] = lambda: None
    after_sample: Callable[[], object] = lambda: None
    """Untimed work between samples, as a periodic metric reader would do it."""
    max_iterations: int | None = None


@dataclass
class Row:
    name: str
    kind: str
    build: Callable[[Env], Case]
    budget_ns: float | None = None
    samples: list[float] = field(default_factory=list)
    iterations: int = 0
    error: str | None = None
    case: Case | None = None

    @property
    def ns_per_call(self) -> float | None:
        return min(self.samples) if self.samples and self.error is None else None


@dataclass
class Env:
    """Shared by every row: the event loop async rows run on."""

    loop: asyncio.AbstractEventLoop


# -- loops ---------------------------------------------------------------------------------


def sync_loop(call: Callable[[], object]) -> Runner:
    def run(n: int) -> int:
        iterations = range(n)
        started = time.perf_counter_ns()
        for _ in iterations:
            call()
        return time.perf_counter_ns() - started

    return run


def rejection_loop(call: Callable[[], object], error: type[BaseException]) -> Runner:
    def run(n: int) -> int:
        iterations = range(n)
        started = time.perf_counter_ns()
        for _ in iterations:
            # try/except as callers write it; contextlib.suppress would add its own cost.
            try:  # noqa: SIM105
                call()
            except error:
                pass
        return time.perf_counter_ns() - started

    return run


def async_loop(env: Env, call: Callable[[], Awaitable[object]]) -> Runner:
    async def body(n: int) -> int:
        iterations = range(n)
        started = time.perf_counter_ns()
        for _ in iterations:
            await call()
        return time.perf_counter_ns() - started

    def run(n: int) -> int:
        return env.loop.run_until_complete(body(n))

    return run


def timed(run: Runner, n: int) -> int:
    """One sample with the collector off, so a collection never lands inside a loop."""
    gc.collect()
    gc.disable()
    try:
        return run(n)
    finally:
        gc.enable()


# -- the guarded functions -------------------------------------------------------------------


def work() -> int:
    return 1


async def work_async() -> int:
    return 1


class Boom(Exception):
    """The trivial exception of the raise+catch baseline, and the failure that trips peers."""


def raise_boom() -> None:
    raise Boom


async def raise_boom_async() -> None:
    raise Boom


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise BenchmarkError(message)


def expect_raises(call: Callable[[], object], error: type[BaseException], what: str) -> None:
    try:
        call()
    except error:
        return
    raise BenchmarkError(f"{what}: the call went through; expected {error.__name__}")


def trip(call: Callable[[], object], times: int) -> None:
    for _ in range(times):
        with contextlib.suppress(Boom):
            call()


# -- baselines ------------------------------------------------------------------------------


def bare_sync(env: Env) -> Case:
    return Case(sync_loop(work))


def bare_async(env: Env) -> Case:
    return Case(async_loop(env, work_async))


def raise_and_catch(env: Env) -> Case:
    return Case(rejection_loop(raise_boom, Boom))


# -- brownout ------------------------------------------------------------------------------


def expect_closed(breaker: brownout.Breaker) -> Callable[[], None]:
    def verify() -> None:
        expect(breaker.state is brownout.BreakerState.CLOSED, f"{breaker.name} left CLOSED")
        expect(breaker.calls_by_outcome()[brownout.Outcome.SUCCESS] > 0, "no success counted")

    return verify


def brownout_sync(env: Env) -> Case:
    breaker = brownout.Breaker("bench-sync")
    return Case(sync_loop(breaker(work)), expect_closed(breaker))


def brownout_async(env: Env) -> Case:
    breaker = brownout.Breaker("bench-async")
    return Case(async_loop(env, breaker(work_async)), expect_closed(breaker))


def brownout_permission_api(env: Env) -> Case:
    breaker = brownout.Breaker("bench-permit")

    # What an instrumentation's wrapper does around a client call.
    def guarded() -> int:
        permit = breaker.acquire()
        started = breaker.clock()
        try:
            result = work()
        except BaseException as error:
            breaker.on_error(permit, started, error)
            raise
        breaker.on_success(permit, started)
        return result

    return Case(sync_loop(guarded), expect_closed(breaker))


def brownout_with_block(env: Env) -> Case:
    breaker = brownout.Breaker("bench-with")

    def guarded() -> int:
        with breaker:
            return work()

    return Case(sync_loop(guarded), expect_closed(breaker))


@dataclass
class Exported:
    """A breaker whose registry is exported through an SDK MeterProvider with a reader."""

    breaker: brownout.Breaker
    metrics: BreakerMetrics
    reader: InMemoryMetricReader
    guarded: Callable[[], int]


def exported_breaker(name: str) -> Exported:
    registry = brownout.BreakerRegistry()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = BreakerMetrics(registry, provider)
    breaker = registry.breaker(name, component="external")
    return Exported(breaker, metrics, reader, breaker(work))


def brownout_with_metrics(env: Env) -> Case:
    exported = exported_breaker("bench-metrics")
    closed = expect_closed(exported.breaker)

    def verify() -> None:
        closed()
        # The local buckets must reach the real histogram, or this row measures nothing.
        calls = exported.breaker.calls_by_outcome()[brownout.Outcome.SUCCESS]
        expect(
            histogram_count(exported.reader) == calls,
            "the OTel histogram does not hold every guarded call",
        )

    # Each observation costs ~10 µs to replay at collect time, so a collection after
    # millions of calls would outlast the SDK's 10 s collect timeout: keep samples modest
    # and hand the histogram each sample's calls between samples, untimed.
    return Case(
        sync_loop(exported.guarded),
        verify,
        after_sample=exported.metrics.export_durations,
        max_iterations=METRICS_ROW_MAX_ITERATIONS,
    )


def histogram_count(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    total = 0
    if data is None:
        return total
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "brownout.dependency.duration":
                    assert isinstance(metric.data, Histogram)
                    total += sum(point.count for point in metric.data.data_points)
    return total


def expect_rejecting(
    breaker: brownout.Breaker, guarded: Callable[[], object]
) -> Callable[[], None]:
    def verify() -> None:
        expect_raises(guarded, brownout.CircuitOpenError, breaker.name)
        expect(breaker.calls_by_outcome()[brownout.Outcome.REJECTED] > 0, "no rejection counted")

    return verify


def brownout_forced_open(env: Env) -> Case:
    breaker = brownout.Breaker("bench-forced")
    guarded = breaker(work)
    breaker.force("forced_open")
    return Case(
        rejection_loop(guarded, brownout.CircuitOpenError), expect_rejecting(breaker, guarded)
    )


def brownout_tripped_open(env: Env) -> Case:
    breaker = brownout.Breaker("bench-tripped", OPEN_FOR_A_LONG_TIME)
    trip(breaker(raise_boom), breaker.config.consecutive_failures)
    expect(breaker.state is brownout.BreakerState.OPEN, "five failures did not trip the breaker")
    guarded = breaker(work)
    return Case(
        rejection_loop(guarded, brownout.CircuitOpenError), expect_rejecting(breaker, guarded)
    )


# -- peers ---------------------------------------------------------------------------------


def circuitbreaker_sync(env: Env) -> Case:
    return Case(sync_loop(circuitbreaker.CircuitBreaker(name="bench-cb-sync")(work)))


def circuitbreaker_async(env: Env) -> Case:
    guard = circuitbreaker.CircuitBreaker(name="bench-cb-async")
    return Case(async_loop(env, guard(work_async)))


def circuitbreaker_open(env: Env) -> Case:
    guard = circuitbreaker.CircuitBreaker(name="bench-cb-open", recovery_timeout=1_000_000)
    trip(guard(raise_boom), guard._failure_threshold)
    guarded = guard(work)
    error = circuitbreaker.CircuitBreakerError
    return Case(
        rejection_loop(guarded, error), lambda: expect_raises(guarded, error, "circuitbreaker")
    )


def pybreaker_sync(env: Env) -> Case:
    return Case(sync_loop(pybreaker.CircuitBreaker(name="bench-pb")(work)))


def pybreaker_open(env: Env) -> Case:
    guard = pybreaker.CircuitBreaker(name="bench-pb-open", reset_timeout=1_000_000)
    guard.open()
    guarded = guard(work)
    error = pybreaker.CircuitBreakerError
    return Case(rejection_loop(guarded, error), lambda: expect_raises(guarded, error, "pybreaker"))


def aiobreaker_async(env: Env) -> Case:
    guard = aiobreaker.CircuitBreaker(timeout_duration=timedelta(seconds=60))
    return Case(async_loop(env, guard(work_async)))


def purgatory_sync(env: Env) -> Case:
    factory = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    factory.uow.initialize()
    return Case(sync_loop(factory("bench-purgatory-sync")(work)))


def purgatory_async(env: Env) -> Case:
    factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    env.loop.run_until_complete(factory.initialize())
    return Case(async_loop(env, factory("bench-purgatory-async")(work_async)))


def naive_stack(env: Env) -> Case:
    """What a service gets by hand: wrapt, pybreaker, and an OTel counter and histogram
    recorded on every call."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("naive")
    calls = meter.create_counter("naive.calls", unit="{call}")
    duration = meter.create_histogram("naive.duration", unit="s")
    guard = pybreaker.CircuitBreaker(name="bench-naive")
    attributes = {"component": "external", "breaker": "naive", "outcome": "success"}

    @wrapt.decorator
    def guarded(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        started = time.perf_counter()
        result = guard.call(wrapped, *args, **kwargs)
        duration.record(time.perf_counter() - started, attributes)
        calls.add(1, attributes)
        return result

    def verify() -> None:
        expect(reader.get_metrics_data() is not None, "the naive stack recorded nothing")

    return Case(sync_loop(guarded(work)), verify)


def rows() -> list[Row]:
    return [
        Row(BARE_SYNC, SYNC, bare_sync),
        Row(BARE_ASYNC, ASYNC, bare_async),
        Row(RAISE_CATCH, REJECT, raise_and_catch),
        Row("brownout closed, sync decorator", SYNC, brownout_sync, BUDGET_SYNC_NS),
        Row("brownout closed, async decorator", ASYNC, brownout_async, BUDGET_ASYNC_NS),
        Row("brownout closed, acquire/on_success", SYNC, brownout_permission_api, BUDGET_SYNC_NS),
        Row("brownout closed, with-block", SYNC, brownout_with_block),
        Row(METRICS_ROW, SYNC, brownout_with_metrics, BUDGET_METRICS_NS),
        Row("brownout rejection, forced open", REJECT, brownout_forced_open, BUDGET_REJECT_NS),
        Row("brownout rejection, tripped open", REJECT, brownout_tripped_open, BUDGET_REJECT_NS),
        Row(CB_SYNC, SYNC, circuitbreaker_sync),
        Row(CB_ASYNC, ASYNC, circuitbreaker_async),
        Row(CB_REJECT, REJECT, circuitbreaker_open),
        Row(PB_SYNC, SYNC, pybreaker_sync),
        Row("pybreaker rejection, open", REJECT, pybreaker_open),
        Row("aiobreaker closed, async", ASYNC, aiobreaker_async),
        Row("purgatory closed, sync", SYNC, purgatory_sync),
        Row("purgatory closed, async", ASYNC, purgatory_async),
        Row(NAIVE_ROW, SYNC, naive_stack),
    ]


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Settings:
    repeats: int
    sample_ms: float
    iterations: int | None
    collect_calls: int
    rejections: int


def calibrate(case: Case, settings: Settings) -> int:
    """Iterations for one sample of about ``sample_ms`` (or ``--iterations``, within the
    row's own cap), after a warm-up of the same length."""
    n = settings.iterations
    if n is None:
        n = 256
        while True:
            elapsed = timed(case.run, n)
            if elapsed >= 2_000_000 or n >= 1 << 24:
                break
            n *= 4
        n = max(1_000, int(n * settings.sample_ms * 1e6 / max(elapsed, 1)))
    if case.max_iterations is not None:
        n = min(n, case.max_iterations)
    timed(case.run, n)
    case.after_sample()
    return n


def measure(table: list[Row], env: Env, settings: Settings) -> None:
    live = []
    for row in table:
        try:
            row.case = row.build(env)
            row.iterations = calibrate(row.case, settings)
            row.case.verify()
            live.append(row)
        except Exception as error:
            row.error = f"{type(error).__name__}: {error}"
    # Rounds interleave the rows so a burst of load from elsewhere hits all of them alike.
    for _ in range(settings.repeats):
        for row in live:
            if row.error is None and row.case is not None:
                try:
                    row.samples.append(timed(row.case.run, row.iterations) / row.iterations)
                    row.case.after_sample()
                except Exception as error:
                    row.error = f"{type(error).__name__}: {error}"
    for row in live:
        if row.error is None and row.case is not None:
            try:
                row.case.verify()
            except Exception as error:
                row.error = f"{type(error).__name__}: {error}"


@dataclass
class CollectCost:
    calls: int
    export_ns_per_observation: float
    collect_ns_per_observation: float
    empty_collect_us: float


def collect_cost(settings: Settings) -> CollectCost:
    """What the per-call savings move to the collecting thread: replaying each observation
    made since the last collection into the SDK histogram."""
    exported = exported_breaker("bench-collect")
    calls = settings.collect_calls
    make_calls = sync_loop(exported.guarded)
    best_export = best_collect = best_empty = float("inf")
    for _ in range(max(1, settings.repeats // 2)):
        timed(make_calls, calls)
        elapsed, replayed = stopwatch(exported.metrics.export_durations)
        expect(replayed == calls, f"export replayed {replayed} of {calls} observations")
        best_export = min(best_export, elapsed / calls)
        timed(make_calls, calls)
        elapsed, _ = stopwatch(exported.reader.collect)
        best_collect = min(best_collect, elapsed / calls)
        elapsed, _ = stopwatch(exported.reader.collect)
        best_empty = min(best_empty, elapsed / 1e3)
    total = exported.breaker.calls_by_outcome()[brownout.Outcome.SUCCESS]
    expect(histogram_count(exported.reader) == total, "collect lost observations")
    return CollectCost(calls, best_export, best_collect, best_empty)


def stopwatch(action: Callable[[], T]) -> tuple[int, T]:
    """Nanoseconds one call of ``action`` takes with the collector off, and its result."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter_ns()
        result = action()
        return time.perf_counter_ns() - started, result
    finally:
        gc.enable()


@dataclass
class Retained:
    name: str
    rejections: int
    retained_bytes: int
    retained_after_gc_bytes: int
    peak_extra_bytes: int


def retained_by_rejections(
    name: str, guarded: Callable[[], object], error: type[BaseException], rejections: int
) -> Retained:
    """Net bytes still allocated after ``rejections`` rejected calls, counted with the
    collector off so garbage cycles would show up as retained too."""
    loop = rejection_loop(guarded, error)
    loop(1_000)
    gc.collect()
    tracemalloc.start()
    try:
        loop(1_000)
        gc.disable()
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        loop(rejections)
        after, peak = tracemalloc.get_traced_memory()
        gc.enable()
        gc.collect()
        after_gc = tracemalloc.get_traced_memory()[0]
    finally:
        gc.enable()
        tracemalloc.stop()
    return Retained(name, rejections, after - before, after_gc - before, peak - before)


def memory_checks(settings: Settings) -> list[Retained]:
    forced = brownout.Breaker("bench-memory-forced")
    forced.force("forced_open")
    tripped = brownout.Breaker("bench-memory-tripped", OPEN_FOR_A_LONG_TIME)
    trip(tripped(raise_boom), tripped.config.consecutive_failures)
    expect(tripped.state is brownout.BreakerState.OPEN, "memory check breaker did not trip")
    peer = circuitbreaker.CircuitBreaker(name="bench-memory-cb", recovery_timeout=1_000_000)
    trip(peer(raise_boom), peer._failure_threshold)
    n = settings.rejections
    open_error = brownout.CircuitOpenError
    for guarded in (forced(work), tripped(work)):
        expect_raises(guarded, open_error, "memory check breaker")
    return [
        # The same loop over calls that never raise: what measuring itself leaves behind.
        retained_by_rejections(MEMORY_CONTROL, work, Boom, n),
        retained_by_rejections("brownout forced open", forced(work), open_error, n),
        retained_by_rejections("brownout tripped open", tripped(work), open_error, n),
        retained_by_rejections(
            "circuitbreaker open", peer(work), circuitbreaker.CircuitBreakerError, n
        ),
    ]


# -- reporting -----------------------------------------------------------------------------


@dataclass
class Report:
    machine: dict[str, Any]
    settings: Settings
    table: list[Row]
    collect: CollectCost | None
    memory: list[Retained]
    errors: list[str]

    def by_name(self, name: str) -> float | None:
        for row in self.table:
            if row.name == name:
                return row.ns_per_call
        return None

    def baseline(self, row: Row) -> float | None:
        return self.by_name(BARE_ASYNC if row.kind == ASYNC else BARE_SYNC)

    def added(self, row: Row) -> float | None:
        own, base = row.ns_per_call, self.baseline(row)
        return None if own is None or base is None else own - base

    def added_by(self, name: str) -> float | None:
        for row in self.table:
            if row.name == name:
                return self.added(row)
        return None

    @property
    def scale(self) -> float | None:
        """How much slower than DESIGN.md's reference machine this one runs circuitbreaker."""
        added = self.added_by(CB_SYNC)
        return None if added is None or added <= 0 else added / DESIGN_CIRCUITBREAKER_ADDED_NS

    def peer_of(self, row: Row) -> str:
        return {SYNC: CB_SYNC, ASYNC: CB_ASYNC, REJECT: CB_REJECT}[row.kind]

    def row_summary(self, row: Row) -> dict[str, Any]:
        added = self.added(row)
        peer = self.added_by(self.peer_of(row))
        raise_catch = self.by_name(RAISE_CATCH)
        scale = self.scale
        summary: dict[str, Any] = {
            "name": row.name,
            "kind": row.kind,
            "ns_per_call": row.ns_per_call,
            "added_ns": added,
            "ratio_vs_bare": _ratio(row.ns_per_call, self.baseline(row)),
            "overhead_ratio_vs_circuitbreaker": (
                None if row.name in (BARE_SYNC, BARE_ASYNC) else _ratio(added, peer)
            ),
            "added_over_raise_catch_ns": (
                row.ns_per_call - raise_catch
                if row.kind == REJECT and row.ns_per_call is not None and raise_catch is not None
                else None
            ),
            "iterations": row.iterations,
            "samples_ns": row.samples,
            "error": row.error,
            "budget_added_ns": row.budget_ns,
            "scaled_budget_added_ns": None,
            "within_budget": None,
            "within_scaled_budget": None,
        }
        if row.budget_ns is not None and added is not None and row.name.startswith("brownout"):
            summary["within_budget"] = added <= row.budget_ns
            if scale is not None:
                summary["scaled_budget_added_ns"] = row.budget_ns * scale
                summary["within_scaled_budget"] = added <= row.budget_ns * scale
        return summary

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "settings": vars(self.settings),
            "design_reference": {
                "circuitbreaker_added_ns": DESIGN_CIRCUITBREAKER_ADDED_NS,
                "pybreaker_added_ns": DESIGN_PYBREAKER_ADDED_NS,
                "naive_stack_ns": NAIVE_STACK_DESIGN_NS,
            },
            "machine_scale_vs_design": self.scale,
            "rows": [self.row_summary(row) for row in self.table],
            "collect": None if self.collect is None else vars(self.collect),
            "memory": [vars(item) for item in self.memory],
            "errors": self.errors,
        }


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or base is None or base <= 0 else value / base


def _num(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _verdict(value: bool | None) -> str:
    return "-" if value is None else ("pass" if value else "FAIL")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            models = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average_start": _load(),
    }


def _load() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def render(report: Report) -> str:
    lines = []
    info = report.machine
    lines.append(
        f"Python {info['python']} ({info['implementation']}) on {info['platform']}; "
        f"{info['cpu_count']} CPUs: {info['cpu']}"
    )
    lines.append(
        f"load average at start {info['load_average_start']}, at end {info['load_average_end']}; "
        f"best of {report.settings.repeats} samples of ~{report.settings.sample_ms:g} ms per row"
    )
    lines.append("")
    header = (
        f"{'benchmark':<38} {'ns/call':>8} {'+ns':>7} {'x bare':>7} {'x cb +ns':>8} "
        f"{'+ns>raise':>9} {'budget':>7} {'scaled':>7} {'raw':>5} {'scaled':>6}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for row in report.table:
        s = report.row_summary(row)
        if row.error is not None:
            lines.append(f"{row.name:<38} ERROR {row.error}")
            continue
        lines.append(
            f"{row.name:<38} {_num(s['ns_per_call']):>8} {_num(s['added_ns']):>7} "
            f"{_num(s['ratio_vs_bare'], '.2f'):>7} "
            f"{_num(s['overhead_ratio_vs_circuitbreaker'], '.2f'):>8} "
            f"{_num(s['added_over_raise_catch_ns']):>9} {_num(s['budget_added_ns']):>7} "
            f"{_num(s['scaled_budget_added_ns']):>7} {_verdict(s['within_budget']):>5} "
            f"{_verdict(s['within_scaled_budget']):>6}"
        )
    lines.append("")
    lines.extend(legend(report))
    if report.collect is not None:
        cost = report.collect
        lines.append("")
        lines.append(
            f"Collect-time cost (moved off the call path), after {cost.calls:,} guarded calls:"
        )
        lines.append(
            f"  BreakerMetrics.export_durations(): {cost.export_ns_per_observation:,.0f} ns "
            "per replayed observation"
        )
        lines.append(
            f"  InMemoryMetricReader.collect():    {cost.collect_ns_per_observation:,.0f} ns "
            "per replayed observation "
            f"(a collect with nothing new: {cost.empty_collect_us:,.0f} µs)"
        )
        lines.extend(collect_consequences(report, cost))
    if report.memory:
        lines.append("")
        lines.append(
            "Memory retained by rejected calls (tracemalloc, collector off during the loop):"
        )
        control = report.memory[0].retained_bytes
        lines.extend(
            f"  {item.name:<22} {item.rejections:,} calls: net {item.retained_bytes:+,} B, "
            f"{item.retained_bytes - control:+,} B over the control "
            f"({item.retained_after_gc_bytes:+,} B after gc.collect, "
            f"peak +{item.peak_extra_bytes:,} B)"
            for item in report.memory
        )
    lines.extend(f"ERROR {error}" for error in report.errors)
    return "\n".join(lines)


def collect_consequences(report: Report, cost: CollectCost) -> list[str]:
    per_observation = cost.collect_ns_per_observation
    within_budget = SDK_COLLECT_TIMEOUT_NS * REPLAY_SHARE_OF_TIMEOUT / per_observation
    lines = [
        f"  One collect replays up to ~{within_budget:,.0f} observations (half the SDK's default "
        f"10 s collect timeout); the rest carries over to the next collection. Sustained, "
        f"that keeps up with ~{within_budget / 60:,.0f} guarded calls/s at a 60 s interval.",
    ]
    added = report.added_by(METRICS_ROW)
    if added is not None:
        lines.append(
            f"  CPU per guarded call, call path + its replay: {added:,.0f} + "
            f"{per_observation:,.0f} = {added + per_observation:,.0f} ns "
            f"(the naive stack: {_num(report.added_by(NAIVE_ROW))} ns, all on the call path)."
        )
    return lines


def legend(report: Report) -> list[str]:
    scale = report.scale
    cb = report.added_by(CB_SYNC)
    pb = report.added_by(PB_SYNC)
    lines = [
        "+ns: added over the bare call (async rows: over the bare await); x bare: ns/call over",
        "the baseline's; x cb +ns: added ns over circuitbreaker's added ns for the same kind of",
        "call (closed sync, closed async, rejection); +ns>raise: a rejection over raising and",
        "catching a trivial exception through one frame. Budgets (DESIGN.md) are ns added:",
        f"closed sync {BUDGET_SYNC_NS:.0f}, async {BUDGET_ASYNC_NS:.0f}, rejection "
        f"{BUDGET_REJECT_NS:.0f}, with metrics {BUDGET_METRICS_NS:,.0f}.",
        f"DESIGN.md's reference machine: circuitbreaker +{DESIGN_CIRCUITBREAKER_ADDED_NS:.0f} ns, "
        f"pybreaker +{DESIGN_PYBREAKER_ADDED_NS:.0f} ns, naive stack ~{NAIVE_STACK_DESIGN_NS:,.0f} "
        "ns; here: circuitbreaker "
        f"+{_num(cb)} ns, pybreaker +{_num(pb)} ns.",
    ]
    if scale is not None:
        lines.append(
            f"Scaled budgets = budget x {scale:.2f} (circuitbreaker's added ns here / "
            f"{DESIGN_CIRCUITBREAKER_ADDED_NS:.0f})."
        )
    return lines


# -- main ----------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> tuple[Settings, str | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--repeats", type=int, help="samples per row; the best one is reported")
    parser.add_argument("--sample-ms", type=float, help="target length of one sample")
    parser.add_argument("--iterations", type=int, help="calls per sample (skips calibration)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    settings = (
        Settings(repeats=3, sample_ms=5, iterations=None, collect_calls=2_000, rejections=10_000)
        if args.quick
        else Settings(
            repeats=9, sample_ms=150, iterations=None, collect_calls=50_000, rejections=100_000
        )
    )
    for name in ("repeats", "sample_ms", "iterations"):
        value = getattr(args, name)
        if value is not None:
            if value <= 0:
                parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
            setattr(settings, name, value)
    return settings, args.json


def main(argv: list[str] | None = None) -> int:
    settings, json_path = parse(argv)
    info = machine()
    loop = asyncio.new_event_loop()
    table = rows()
    errors: list[str] = []
    collect: CollectCost | None = None
    memory: list[Retained] = []
    try:
        measure(table, Env(loop), settings)
        try:
            collect = collect_cost(settings)
        except Exception as error:
            errors.append(f"collect cost: {type(error).__name__}: {error}")
        try:
            memory = memory_checks(settings)
        except Exception as error:
            errors.append(f"memory: {type(error).__name__}: {error}")
    finally:
        loop.close()
    info["load_average_end"] = _load()
    errors[:0] = [f"{row.name}: {row.error}" for row in table if row.error is not None]
    report = Report(info, settings, table, collect, memory, errors)
    print(render(report))
    if json_path is not None:
        with open(json_path, "w", encoding="utf-8") as out:
            json.dump(report.to_json(), out, indent=2)
            out.write("\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
