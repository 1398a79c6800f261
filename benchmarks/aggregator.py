"""Health aggregator: the cost of one evaluation, next to a trivial baseline.

Run from the repository root::

    .venv/bin/python benchmarks/aggregator.py           # full run
    .venv/bin/python benchmarks/aggregator.py --quick   # smoke run

One evaluation scores 20 breakers in 5 components, applies cascades, floors and level
hysteresis, and builds and publishes the snapshot. The baseline is the least an
evaluation could do: read the 20 breaker states and take a weighted mean. Both are timed
after 0 and after 100,000 recorded calls, to show that evaluation cost does not depend on
request rate. ``collect`` (the OpenTelemetry read, on the heartbeat) is timed apart: it
runs the metric callbacks of the whole provider, including the breaker bridge's replay
of latency observations recorded since the last collection.

Numbers are the best (minimum) microseconds per operation over several samples with the
garbage collector off. The script reports; it never fails on a budget.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from opentelemetry.sdk.metrics import MeterProvider

from brownout import BreakerRegistry, BreakerState
from brownout.health import SnapshotBoard
from brownout.health.aggregator import HealthAggregator

COMPONENTS = {"database": 0.4, "cache": 0.2, "openai": 0.2, "s3": 0.1, "external": 0.1}
BUDGET_US = 100.0


def best_us(operation: Callable[[], object], loops: int, samples: int) -> float:
    best = float("inf")
    for _ in range(samples):
        gc.disable()
        try:
            started = time.perf_counter()
            for _ in range(loops):
                operation()
            elapsed = time.perf_counter() - started
        finally:
            gc.enable()
        best = min(best, elapsed / loops * 1e6)
    return best


def baseline(registry: BreakerRegistry) -> Callable[[], float]:
    def evaluate() -> float:
        total = weight = 0.0
        for breaker in registry:
            w = COMPONENTS[breaker.component]
            total += w * (0.0 if breaker.state is BreakerState.OPEN else 100.0)
            weight += w
        return total / weight

    return evaluate


def record_calls(registry: BreakerRegistry, count: int) -> None:
    guarded = [breaker(lambda: None) for breaker in registry]
    for index in range(count):
        guarded[index % len(guarded)]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples, for smoke runs")
    args = parser.parse_args()
    loops, samples = (200, 3) if args.quick else (2_000, 7)

    registry = BreakerRegistry()
    for component in COMPONENTS:
        for index in range(4):
            registry.breaker(f"{component}-{index}", component=component)
    provider = MeterProvider()
    aggregator = HealthAggregator(registry=registry, board=SnapshotBoard(), meter_provider=provider)
    trivial = baseline(registry)

    rows = []
    for calls in (0, 100_000):
        if calls:
            record_calls(registry, calls)
            started = time.perf_counter()
            aggregator.collect()
            collect_first_ms = (time.perf_counter() - started) * 1e3
        else:
            aggregator.collect()
            collect_first_ms = 0.0
        base = best_us(trivial, loops, samples)
        evaluation = best_us(aggregator.evaluate, loops, samples)
        collect = best_us(aggregator.collect, max(1, loops // 20), samples)
        rows.append((calls, base, evaluation, collect, collect_first_ms))
    aggregator.close()
    provider.shutdown()

    print(f"20 breakers, 5 components; budget: evaluation <= {BUDGET_US:.0f} us")
    print()
    header = (
        "| calls recorded | baseline (us) | evaluate (us) | ratio | collect, idle (us) "
        "| collect after the calls (ms) |"
    )
    print(header)
    print("|---:|---:|---:|---:|---:|---:|")
    for calls, base, evaluation, collect, first in rows:
        print(
            f"| {calls:,} | {base:.1f} | {evaluation:.1f} | {evaluation / base:.1f}x "
            f"| {collect:.0f} | {first:.1f} |"
        )
    verdict = "within" if max(row[2] for row in rows) <= BUDGET_US else "OVER"
    print()
    print(f"evaluation {verdict} the {BUDGET_US:.0f} us budget")


if __name__ == "__main__":
    main()
