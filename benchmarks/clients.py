"""What the client instrumentations add to real client calls, measured in one run.

Run from the repository root::

    .venv/bin/python benchmarks/clients.py           # full run, about a minute and a half
    .venv/bin/python benchmarks/clients.py --quick   # smoke run, a few seconds

Each case is one real call against a local server: a redis ``GET`` against a private
``redis-server``, a SQLAlchemy ``SELECT 1`` (connect from the pool, execute, return) on a
SQLite file. Samples alternate plain and instrumented (instrumenting and uninstrumenting
between samples, so both run against the same server, connection and cache state); each
side reports its median sample in µs per call, and "added" is the median of the paired
differences (each instrumented sample minus the plain sample next to it), as a share of the
plain call: on a shared machine a round trip's noise is several times the instrumentation's
cost, and many short paired samples cancel most of it. Target: the redis GET costs at
most 2% more instrumented.

Adding a case: write a function returning a :class:`Case` (``call`` runs one client call;
``instrument`` / ``uninstrument`` switch the breakers on and off; ``close`` releases the
server) and append it to ``CASES``.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import sqlalchemy
from redis.backoff import NoBackoff
from redis.retry import Retry

from brownout.breaker import BreakerRegistry
from brownout.instrumentation.redis import RedisBreakerInstrumentor
from brownout.instrumentation.sqlalchemy import SQLAlchemyBreakerInstrumentor
from brownout.instrumentation.wrapping import unwrap, wrap


@dataclass
class Case:
    name: str
    call: Callable[[], object]
    instrument: Callable[[], None]
    uninstrument: Callable[[], None]
    close: Callable[[], None] = lambda: None
    target_percent: float | None = None
    """The most the instrumentation may add, as a share of the plain call."""
    iterations_scale: int = 1
    """Calls per sample relative to the others (in-process cases are ~50x shorter)."""


@dataclass
class Result:
    name: str
    plain_us: float
    instrumented_us: float
    target_percent: float | None
    samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def added_us(self) -> float:
        return statistics.median(instrumented - plain for plain, instrumented in self.samples)

    @property
    def added_percent(self) -> float:
        return 100.0 * self.added_us / self.plain_us


# -- cases -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _passthrough(
    wrapped: Callable[..., object],
    instance: object,
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> object:
    return wrapped(*args, **kwargs)


def redis_get_wrapt_only() -> Case:
    """Reference: the same GET under a do-nothing wrapt wrapper, the floor any wrapt-based
    instrumentation (ours, OpenTelemetry's) starts from."""
    case = redis_get()
    case.name = "redis GET, do-nothing wrapt wrapper (reference)"
    case.instrument = lambda: wrap(redis.Redis, "execute_command", _passthrough)
    case.uninstrument = lambda: unwrap(redis.Redis, "execute_command")
    case.target_percent = None
    return case


class _AnsweringRedis(redis.Redis):
    """A client whose network round trip is replaced by an immediate answer, so what is
    left is the client's own code and whatever wraps ``execute_command``."""

    def _execute_command(self, *args: object, **options: object) -> object:
        return b"value"


def redis_get_in_process() -> Case:
    client = _AnsweringRedis()
    instrumentor = RedisBreakerInstrumentor()
    registry = BreakerRegistry()
    return Case(
        name="redis GET, in process (round trip stubbed)",
        call=lambda: client.get("bench:key"),
        instrument=lambda: instrumentor.instrument(registry=registry, skip_dep_check=True),
        uninstrument=instrumentor.uninstrument,
        iterations_scale=50,
    )


def redis_get() -> Case:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="brownout-bench-redis-")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port, retry=Retry(NoBackoff(), 0))
    deadline = time.monotonic() + 10
    while True:
        try:
            client.set("bench:key", "value")
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    instrumentor = RedisBreakerInstrumentor()
    registry = BreakerRegistry()

    def close() -> None:
        client.close()
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    return Case(
        name="redis GET, private redis-server",
        call=lambda: client.get("bench:key"),
        instrument=lambda: instrumentor.instrument(registry=registry, skip_dep_check=True),
        uninstrument=instrumentor.uninstrument,
        close=close,
        target_percent=2.0,
    )


def sqlalchemy_select_one() -> Case:
    workdir = Path(tempfile.mkdtemp(prefix="brownout-bench-sqlite-"))
    engine = sqlalchemy.create_engine(f"sqlite:///{workdir / 'bench.db'}")
    statement = sqlalchemy.text("SELECT 1")
    instrumentor = SQLAlchemyBreakerInstrumentor()
    registry = BreakerRegistry()

    def call() -> object:
        with engine.connect() as connection:
            return connection.execute(statement).scalar()

    def close() -> None:
        engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    call()
    return Case(
        name="SQLAlchemy connect + SELECT 1, SQLite file",
        call=call,
        instrument=lambda: instrumentor.instrument_engine(engine, registry=registry),
        uninstrument=lambda: instrumentor.uninstrument_engine(engine),
        close=close,
    )


CASES: list[Callable[[], Case]] = [
    redis_get,
    redis_get_wrapt_only,
    redis_get_in_process,
    sqlalchemy_select_one,
]


# -- measuring ---------------------------------------------------------------------------


def _sample(call: Callable[[], object], iterations: int) -> float:
    """µs per call over one sample, the collector off so it cannot land in one side only."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter_ns()
        for _ in range(iterations):
            call()
        return (time.perf_counter_ns() - started) / iterations / 1000
    finally:
        gc.enable()


def measure(case: Case, repeats: int, iterations: int) -> Result:
    iterations *= case.iterations_scale
    for _ in range(iterations // 10 + 1):  # warm up both paths
        case.call()
    case.instrument()
    for _ in range(iterations // 10 + 1):
        case.call()
    case.uninstrument()
    samples = []
    for repeat in range(repeats):
        # Alternate which side goes first, so a drift in load favours neither.
        if repeat % 2:
            case.instrument()
            instrumented = _sample(case.call, iterations)
            case.uninstrument()
            plain = _sample(case.call, iterations)
        else:
            plain = _sample(case.call, iterations)
            case.instrument()
            instrumented = _sample(case.call, iterations)
            case.uninstrument()
        samples.append((plain, instrumented))
    return Result(
        case.name,
        statistics.median(plain for plain, _ in samples),
        statistics.median(instrumented for _, instrumented in samples),
        case.target_percent,
        samples,
    )


def table(results: list[Result]) -> str:
    header = (
        f"| {'case':<50} | plain µs | instrumented µs | added µs | added % | target |\n"
        f"|{'-' * 52}|---------:|----------------:|---------:|--------:|-------:|"
    )
    rows = []
    for result in results:
        target = "" if result.target_percent is None else f"≤ {result.target_percent:g}%"
        rows.append(
            f"| {result.name:<50} | {result.plain_us:8.1f} | {result.instrumented_us:15.1f} "
            f"| {result.added_us:8.2f} | {result.added_percent:6.2f}% | {target:>6} |"
        )
    return "\n".join([header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="samples per side")
    parser.add_argument("--iterations", type=int, default=None, help="calls per sample")
    args = parser.parse_args(argv)
    repeats = args.repeats or (10 if args.quick else 200)
    iterations = args.iterations or (100 if args.quick else 300)
    results = []
    for make in CASES:
        case = make()
        try:
            results.append(measure(case, repeats, iterations))
        finally:
            case.close()
    print(f"Python {sys.version.split()[0]}, {repeats} samples x {iterations} calls per side")
    print(table(results))
    by_name = {result.name: result for result in results}
    stubbed = by_name.get("redis GET, in process (round trip stubbed)")
    real = by_name.get("redis GET, private redis-server")
    if stubbed is not None and real is not None:
        print(
            f"In process, the redis instrumentation adds {stubbed.added_us:.2f} µs per call: "
            f"{100 * stubbed.added_us / real.plain_us:.2f}% of a local GET round trip "
            f"({real.plain_us:.1f} µs)."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
