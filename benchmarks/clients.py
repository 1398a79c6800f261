"""What the client instrumentations add to real client calls, measured in one run.

Run from the repository root::

    .venv/bin/python benchmarks/clients.py           # full run, about 80 s
    .venv/bin/python benchmarks/clients.py --quick   # smoke run, a few seconds

Each case is one real call against a local server: a redis ``GET`` against a private
``redis-server``, a SQLAlchemy ``SELECT 1`` (connect from the pool, execute, return) on a
SQLite file, a boto3 S3 ``HeadObject`` against moto in server mode (its own process).
Rows marked "in process" stub the round trip out, so only client code and wrappers
remain. Both sides live side by side in one process: the instrumented client goes
through the breakers, the plain one is an instance of a subclass (for boto3, of its own
client class) that pins the original, unwrapped methods. Every round calls each side
once, in a random order, and times each call on its own; "added" is the median over
rounds of (instrumented - plain). A round trip varies by several µs from one call to the
next, and drifts from one second to the next; pairing calls made microseconds apart
cancels both. Target: the redis GET costs at most 2% more instrumented.

Two control rows check the method itself. "A/A" pairs two plain clients, and "copy" pairs
the plain client with one whose ``execute_command`` is a copy of redis-py's (same bytecode,
another code object): nothing is added in either, so both must come out ~0. The copy row
matters because an earlier version of this harness, calling the plain side twice per
round, charged ~0.8 µs to code for merely being different (it ran half as often, so the
CPU predicted it worse); the A/A row could not show that.

Adding a case: write a function returning a :class:`Case` (``plain`` and ``instrumented``
each run one client call; ``close`` undoes the instrumentation and releases the server)
and append it to ``CASES``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import redis
import redis.asyncio
import sqlalchemy
import wrapt
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.config import Config
from redis.backoff import NoBackoff
from redis.retry import Retry

from brownout.breaker import BreakerRegistry
from brownout.instrumentation.botocore import BotocoreBreakerInstrumentor
from brownout.instrumentation.redis import RedisBreakerInstrumentor
from brownout.instrumentation.sqlalchemy import SQLAlchemyBreakerInstrumentor


@dataclass
class Case:
    name: str
    plain: Callable[[], Any]
    instrumented: Callable[[], Any]
    close: Callable[[], None] = lambda: None
    target_percent: float | None = None
    """The most the instrumentation may add, as a share of the plain call."""
    loop: asyncio.AbstractEventLoop | None = None
    """Set for an asyncio case: ``plain`` and ``instrumented`` return coroutines, awaited
    one after the other in this loop, as a handler awaits its redis calls."""
    round_share: float = 1.0
    """The share of the run's rounds this case takes: a call of over a millisecond needs
    fewer rounds for a stable median, and would otherwise make the run last minutes."""


@dataclass
class Result:
    name: str
    plain_us: float
    instrumented_us: float
    added_us: float
    target_percent: float | None
    rounds: int

    @property
    def added_percent(self) -> float:
        return 100.0 * self.added_us / self.plain_us


# -- cases -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _PlainRedis(redis.Redis):
    """redis.Redis with the methods the instrumentation replaces pinned to the originals
    (captured at import, before anything is instrumented)."""

    execute_command = vars(redis.Redis)["execute_command"]


class _AnsweringRedis(redis.Redis):
    """A client whose network round trip is replaced by an immediate answer, so what is
    left is the client's own code and whatever wraps ``execute_command``."""

    def _execute_command(self, *args: object, **options: object) -> object:
        return b"value"


class _PlainAnsweringRedis(_AnsweringRedis):
    execute_command = vars(redis.Redis)["execute_command"]


def _passthrough(
    wrapped: Callable[..., object], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> object:
    return wrapped(*args, **kwargs)


def _copied(function: Any) -> Any:
    """The same function with its own code object: same bytecode, another object."""
    return types.FunctionType(
        function.__code__.replace(), function.__globals__, function.__name__,
        function.__defaults__, function.__closure__,
    )  # fmt: skip


class _CopiedRedis(redis.Redis):
    """Control: ``execute_command`` is a copy of redis-py's, so nothing is added."""

    execute_command = _copied(vars(redis.Redis)["execute_command"])


class _WraptRedis(redis.Redis):
    """The floor of any wrapt-based instrumentation (OpenTelemetry's included): a wrapt
    proxy that only calls through."""

    execute_command = wrapt.FunctionWrapper(vars(redis.Redis)["execute_command"], _passthrough)


class _RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        self.port = _free_port()
        self.workdir = tempfile.mkdtemp(prefix="brownout-bench-redis-")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = self.client(redis.Redis)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.set("bench:key", "value")
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def client(self, kind: type[redis.Redis]) -> redis.Redis:
        return kind(port=self.port, retry=Retry(NoBackoff(), 0))

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _instrumented_redis() -> Callable[[], None]:
    instrumentor = RedisBreakerInstrumentor()
    instrumentor.instrument(registry=BreakerRegistry(), skip_dep_check=True)
    return instrumentor.uninstrument


def _redis_case(
    name: str,
    kind: type[redis.Redis],
    uninstrument: Callable[[], None] = lambda: None,
    target_percent: float | None = None,
) -> Case:
    """A GET through a ``kind`` client next to the same GET through a plain one."""
    server = _RedisServer()
    plain, other = server.client(_PlainRedis), server.client(kind)

    def close() -> None:
        uninstrument()
        plain.close()
        other.close()
        server.close()

    return Case(
        name=name,
        plain=lambda: plain.get("bench:key"),
        instrumented=lambda: other.get("bench:key"),
        close=close,
        target_percent=target_percent,
    )


class _PlainAsyncRedis(redis.asyncio.Redis):
    execute_command = vars(redis.asyncio.Redis)["execute_command"]


_ASYNC_EXECUTE_COMMAND = vars(redis.asyncio.Redis)["execute_command"]


class _ForwardingAsyncRedis(redis.asyncio.Redis):
    """The floor of any async wrapper: a coroutine that only awaits the original."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await _ASYNC_EXECUTE_COMMAND(self, *args, **options)


def _async_redis_case(
    name: str, kind: type[redis.asyncio.Redis], uninstrument: Callable[[], None] = lambda: None
) -> Case:
    """An asyncio GET through a ``kind`` client next to the same GET through a plain one."""
    server = _RedisServer()
    plain = _PlainAsyncRedis(port=server.port, retry=None)
    other = kind(port=server.port, retry=None)
    loop = asyncio.new_event_loop()

    def close() -> None:
        uninstrument()
        loop.run_until_complete(plain.aclose())
        loop.run_until_complete(other.aclose())
        loop.close()
        server.close()

    return Case(
        name=name,
        plain=lambda: plain.get("bench:key"),
        instrumented=lambda: other.get("bench:key"),
        close=close,
        loop=loop,
    )


def redis_get() -> Case:
    uninstrument = _instrumented_redis()
    return _redis_case("redis GET, private redis-server", redis.Redis, uninstrument, 2.0)


def redis_get_a_a() -> Case:
    """Control: two plain clients."""
    return _redis_case("redis GET, A/A: plain vs plain (control)", _PlainRedis)


def redis_get_copy() -> Case:
    """Control: redis-py's execute_command vs a copy of it."""
    return _redis_case("redis GET, copy of execute_command (control)", _CopiedRedis)


def redis_get_wrapt_only() -> Case:
    """Reference: the same GET under a do-nothing wrapt wrapper."""
    return _redis_case("redis GET, do-nothing wrapt wrapper (reference)", _WraptRedis)


def async_redis_get() -> Case:
    uninstrument = _instrumented_redis()
    return _async_redis_case("redis.asyncio GET, private redis-server", redis.asyncio.Redis,
                             uninstrument)  # fmt: skip


def async_redis_get_forwarding_only() -> Case:
    """Reference: the same GET under an async function that only awaits the original."""
    return _async_redis_case("redis.asyncio GET, await-only wrapper (reference)",
                             _ForwardingAsyncRedis)  # fmt: skip


def redis_get_in_process() -> Case:
    plain, instrumented = _PlainAnsweringRedis(), _AnsweringRedis()
    uninstrument = _instrumented_redis()
    return Case(
        name="redis GET, in process (round trip stubbed)",
        plain=lambda: plain.get("bench:key"),
        instrumented=lambda: instrumented.get("bench:key"),
        close=uninstrument,
    )


def sqlalchemy_select_one() -> Case:
    workdir = Path(tempfile.mkdtemp(prefix="brownout-bench-sqlite-"))
    url = f"sqlite:///{workdir / 'bench.db'}"
    plain_engine, engine = sqlalchemy.create_engine(url), sqlalchemy.create_engine(url)
    statement = sqlalchemy.text("SELECT 1")
    instrumentor = SQLAlchemyBreakerInstrumentor()
    # Instrumenting an engine also wraps Engine.raw_connection for every engine; the
    # plain engine's class pins the original.
    plain_engine.__class__ = type(
        "PlainEngine", (type(plain_engine),), {"raw_connection": type(engine).raw_connection}
    )
    instrumentor.instrument_engine(engine, registry=BreakerRegistry())

    def select_one(on: sqlalchemy.Engine) -> object:
        with on.connect() as connection:
            return connection.execute(statement).scalar()

    def close() -> None:
        instrumentor.uninstrument_engine(engine)
        plain_engine.dispose()
        engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    return Case(
        name="SQLAlchemy connect + SELECT 1, SQLite file",
        plain=lambda: select_one(plain_engine),
        instrumented=lambda: select_one(engine),
        close=close,
    )


_MAKE_API_CALL = vars(BaseClient)["_make_api_call"]


class _MotoServer:
    """moto in server mode in a process of its own, so its request handling does not
    compete with the measured calls for this process's GIL."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise SystemExit("moto's server did not start (is moto[server] installed?)")
            time.sleep(0.05)

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(retries={"max_attempts": 1}),
        )

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def boto3_head_object() -> Case:
    server = _MotoServer()
    # botocore builds a class per client, so pinning the original on the plain client's
    # class leaves every other client instrumented.
    plain, instrumented = server.client(), server.client()
    type(plain)._make_api_call = _MAKE_API_CALL
    plain.create_bucket(Bucket="bench")
    plain.put_object(Bucket="bench", Key="key", Body=b"value")
    instrumentor = BotocoreBreakerInstrumentor()
    instrumentor.instrument(registry=BreakerRegistry(), skip_dep_check=True)

    def close() -> None:
        instrumentor.uninstrument()
        plain.close()
        instrumented.close()
        server.close()

    return Case(
        name="boto3 S3 HeadObject, moto server",
        plain=lambda: plain.head_object(Bucket="bench", Key="key"),
        instrumented=lambda: instrumented.head_object(Bucket="bench", Key="key"),
        close=close,
        round_share=0.1,
    )


class _EmptyBody:
    def stream(self, **kwargs: object) -> Iterator[bytes]:
        yield b""


def _answer_head_object(request: Any, **kwargs: object) -> AWSResponse:
    """A ``before-send`` handler: botocore takes its answer instead of sending the request
    (moto's in-memory mock answers the same way)."""
    return AWSResponse(request.url, 200, {"Content-Length": "5", "ETag": '"bench"'}, _EmptyBody())


def boto3_head_object_in_process() -> Case:
    def client() -> Any:
        made = boto3.session.Session().client(
            "s3",
            endpoint_url="http://127.0.0.1:9",  # never reached
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        made.meta.events.register("before-send.s3.HeadObject", _answer_head_object)
        return made

    plain, instrumented = client(), client()
    type(plain)._make_api_call = _MAKE_API_CALL
    instrumentor = BotocoreBreakerInstrumentor()
    instrumentor.instrument(registry=BreakerRegistry(), skip_dep_check=True)
    return Case(
        name="boto3 S3 HeadObject, in process (HTTP stubbed)",
        plain=lambda: plain.head_object(Bucket="bench", Key="key"),
        instrumented=lambda: instrumented.head_object(Bucket="bench", Key="key"),
        close=instrumentor.uninstrument,
        round_share=0.25,
    )


CASES: list[Callable[[], Case]] = [
    redis_get,
    redis_get_a_a,
    redis_get_copy,
    redis_get_wrapt_only,
    async_redis_get,
    async_redis_get_forwarding_only,
    redis_get_in_process,
    sqlalchemy_select_one,
    boto3_head_object,
    boto3_head_object_in_process,
]


# -- measuring ---------------------------------------------------------------------------


def measure(case: Case, rounds: int, seed: int = 0) -> Result:
    rounds = max(1, round(rounds * case.round_share))
    if case.loop is None:
        plain, instrumented = _paired(case.plain, case.instrumented, rounds, seed)
    else:
        paired = _paired_async(case.plain, case.instrumented, rounds, seed)
        plain, instrumented = case.loop.run_until_complete(paired)
    added = statistics.median(b - a for a, b in zip(plain, instrumented, strict=True))
    return Result(
        name=case.name,
        plain_us=statistics.median(plain) / 1000,
        instrumented_us=statistics.median(instrumented) / 1000,
        added_us=added / 1000,
        target_percent=case.target_percent,
        rounds=rounds,
    )


@contextlib.contextmanager
def _collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()  # a collection would land on one side of one round
    try:
        yield
    finally:
        gc.enable()


# Both sides run equally often: one run more often than the other would be predicted
# better by the CPU, which the copy control row would show.


def _paired(
    plain_call: Callable[[], object],
    instrumented_call: Callable[[], object],
    rounds: int,
    seed: int,
) -> tuple[list[int], list[int]]:
    for _ in range(max(rounds // 20, 100)):  # warm up both sides
        plain_call()
        instrumented_call()
    plain, instrumented = [0] * rounds, [0] * rounds
    plain_first = random.Random(seed).random
    clock = time.perf_counter_ns
    with _collector_off():
        for round_ in range(rounds):
            if plain_first() < 0.5:
                started = clock()
                plain_call()
                between = clock()
                instrumented_call()
                ended = clock()
                plain[round_], instrumented[round_] = between - started, ended - between
            else:
                started = clock()
                instrumented_call()
                between = clock()
                plain_call()
                ended = clock()
                instrumented[round_], plain[round_] = between - started, ended - between
    return plain, instrumented


async def _paired_async(
    plain_call: Callable[[], Awaitable[object]],
    instrumented_call: Callable[[], Awaitable[object]],
    rounds: int,
    seed: int,
) -> tuple[list[int], list[int]]:
    """:func:`_paired` for coroutines."""
    for _ in range(max(rounds // 20, 100)):
        await plain_call()
        await instrumented_call()
    plain, instrumented = [0] * rounds, [0] * rounds
    plain_first = random.Random(seed).random
    clock = time.perf_counter_ns
    with _collector_off():
        for round_ in range(rounds):
            if plain_first() < 0.5:
                started = clock()
                await plain_call()
                between = clock()
                await instrumented_call()
                ended = clock()
                plain[round_], instrumented[round_] = between - started, ended - between
            else:
                started = clock()
                await instrumented_call()
                between = clock()
                await plain_call()
                ended = clock()
                instrumented[round_], plain[round_] = between - started, ended - between
    return plain, instrumented


def table(results: list[Result]) -> str:
    header = (
        f"| {'case':<50} | plain µs | instrumented µs | added µs | added % | target |\n"
        f"|{'-' * 52}|---------:|----------------:|---------:|--------:|-------:|"
    )
    rows = []
    for result in results:
        target = "" if result.target_percent is None else f"≤ {result.target_percent:g}%"
        rows.append(
            f"| {result.name:<50} | {result.plain_us:8.2f} | {result.instrumented_us:15.2f} "
            f"| {result.added_us:+8.2f} | {result.added_percent:+6.2f}% | {target:>6} |"
        )
    return "\n".join([header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per case")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be positive")
    rounds = args.rounds or (2_000 if args.quick else 40_000)
    results = []
    for make in CASES:
        case = make()
        try:
            results.append(measure(case, rounds))
        finally:
            case.close()
    fewer = [f"{result.name}: {result.rounds}" for result in results if result.rounds != rounds]
    print(f"Python {sys.version.split()[0]}, {rounds} rounds per case"
          + (f" (fewer for {'; '.join(fewer)})" if fewer else ""))  # fmt: skip
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
