"""The recovery loop driven step by step on a fake clock, and its task lifecycle."""

from __future__ import annotations

import asyncio
import logging

import pytest

from brownout import BreakerState, CircuitOpenError
from brownout.health.probes import Probe
from brownout.health.recovery import RecoveryLoop, RecoveryThread
from brownout.levels import Level
from brownout.settings import ProbeSettings
from brownout.testing import FakeClock, FixedRandom
from tests.health.conftest import Build
from tests.servers import eventually, eventually_async


class Answers:
    """A probe check that fails until told otherwise, remembering when it ran."""

    def __init__(self, clock: FakeClock, ok: bool = False) -> None:
        self.clock = clock
        self.ok = ok
        self.times: list[float] = []

    def __call__(self) -> None:
        self.times.append(self.clock())
        if not self.ok:
            raise ConnectionError("still down")


async def run_for(loop: RecoveryLoop, clock: FakeClock, seconds: int) -> None:
    for _ in range(seconds):
        clock.advance(1)
        await loop.step()


async def test_probe_backoff_sequence(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build()
    check = Answers(clock)
    loop = RecoveryLoop(aggregator, [Probe("cache", check)], random_source=FixedRandom())
    deps["cache"].die()
    start = clock()
    await loop.step()
    assert loop.next_probe_at("cache") == pytest.approx(start + 10)
    await run_for(loop, clock, 700)
    # 10 -> 20 -> 40 -> 80 -> 160 -> 300 (capped) between attempts.
    assert [round(at - start) for at in check.times] == [10, 30, 70, 150, 310, 610]
    assert all(not attempt.ok for attempt in loop.attempts)
    assert loop.attempts[0].error == "ConnectionError"
    # Nobody called the cache: its breaker stays open, only the probe asked.
    assert deps["cache"].breaker.state is BreakerState.OPEN


async def test_backoff_jitter_uses_the_random_source(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build()
    check = Answers(clock)
    settings = ProbeSettings(jitter=0.5)
    loop = RecoveryLoop(
        aggregator, [Probe("cache", check)], settings=settings, random_source=FixedRandom(0.9)
    )
    deps["cache"].die()
    start = clock()
    await loop.step()
    # 10 s scaled by 1 + 0.5 * (2 * 0.9 - 1) = 1.4.
    assert loop.next_probe_at("cache") == pytest.approx(start + 14)


async def test_successful_probe_half_opens_the_breaker(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build(smoothing_seconds=0)
    check = Answers(clock)
    loop = RecoveryLoop(aggregator, [Probe("cache", check)], random_source=FixedRandom())
    deps["cache"].die()
    await loop.step()
    assert aggregator.snapshot.level is Level.DEGRADED
    await run_for(loop, clock, 25)
    assert len(check.times) == 1
    check.ok = True
    deps["cache"].up = True
    await run_for(loop, clock, 10)
    assert len(check.times) == 2
    # The open period ends at once; real calls are the half-open probes and close it.
    breaker = deps["cache"].breaker
    assert breaker.state is BreakerState.HALF_OPEN
    for _ in range(breaker.config.half_open_permits):
        assert deps["cache"].call() == "ok"
    assert breaker.state is BreakerState.CLOSED
    assert loop.attempts[-1].ok
    await loop.step()
    assert loop.next_probe_at("cache") is None
    # The level still climbs back with the dwell, counted from the recovery.
    assert aggregator.snapshot.level is Level.DEGRADED
    await run_for(loop, clock, 30)
    assert aggregator.snapshot.level is Level.OPTIMAL
    # From the trip to the half-open calls that closed it, after the probe at 30 s.
    assert aggregator.outage_durations("cache") == (pytest.approx(35, abs=0.01),)
    # Real traffic goes through again.
    assert deps["cache"].call() == "ok"


async def test_probe_success_without_reset_leaves_the_breaker(
    build: Build, clock: FakeClock
) -> None:
    aggregator, deps = build()
    check = Answers(clock, ok=True)
    loop = RecoveryLoop(
        aggregator,
        [Probe("cache", check)],
        settings=ProbeSettings(half_open_on_success=False),
        random_source=FixedRandom(),
    )
    deps["cache"].die()
    await loop.step()
    await run_for(loop, clock, 10)
    assert loop.attempts[-1].ok
    deps["cache"].up = True
    # The breaker half-opens on its own at the next real call.
    assert deps["cache"].breaker.state is BreakerState.OPEN
    assert deps["cache"].call() == "ok"
    assert deps["cache"].breaker.state is BreakerState.HALF_OPEN


async def test_probes_for_named_breakers_only(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build()
    other = deps["cache"].breaker
    second = aggregator.registry.breaker("cache-2", component="cache")
    check = Answers(clock, ok=True)
    loop = RecoveryLoop(
        aggregator, [Probe("cache", check, breakers=("cache-2",))], random_source=FixedRandom()
    )
    deps["cache"].die()
    second.force("forced_open")
    for _ in range(5):  # trip the second one with real failures too
        try:
            with second:
                raise ConnectionError
        except Exception:
            pass
    await loop.step()
    await run_for(loop, clock, 10)
    assert other.state is BreakerState.OPEN
    # Forced open is an operator's decision: a probe never overrides it.
    assert second.state is BreakerState.FORCED_OPEN


async def test_async_probe_and_false_result(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build()
    results = [False, True]

    async def check() -> bool:
        await asyncio.sleep(0)
        return results.pop(0)

    loop = RecoveryLoop(aggregator, [Probe("openai", check)], random_source=FixedRandom())
    assert loop.probes()["openai"][0].is_async
    deps["openai"].die()
    await loop.step()
    await run_for(loop, clock, 31)
    assert [attempt.ok for attempt in loop.attempts] == [False, True]
    assert deps["openai"].breaker.state is BreakerState.HALF_OPEN


async def test_probe_timeout_counts_as_failure(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build()

    async def hangs() -> None:
        await asyncio.Event().wait()

    loop = RecoveryLoop(
        aggregator,
        [Probe("s3", hangs)],
        settings=ProbeSettings(timeout_seconds=0.01),
        random_source=FixedRandom(),
    )
    deps["s3"].die()
    await loop.step()
    await run_for(loop, clock, 10)
    assert loop.attempts[-1].error == "TimeoutError"


def test_probe_kinds_can_be_turned_off(build: Build) -> None:
    aggregator, _ = build(probes={"kinds": {"redis": False}})
    loop = RecoveryLoop(aggregator)
    assert not loop.add_probe(Probe("cache", lambda: None, kind="redis"))
    assert loop.add_probe(Probe("cache", lambda: None, kind="sqlalchemy"))
    assert list(loop.probes()) == ["cache"]
    off = RecoveryLoop(aggregator, settings=ProbeSettings(enabled=False))
    assert not off.add_probe(Probe("cache", lambda: None))


def test_sync_step_for_threads(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build()
    check = Answers(clock, ok=True)
    loop = RecoveryLoop(aggregator, [Probe("cache", check)], random_source=FixedRandom())
    deps["cache"].die()
    loop.step_sync()
    for _ in range(10):
        clock.advance(1)
        loop.step_sync()
    assert deps["cache"].breaker.state is BreakerState.HALF_OPEN


async def test_asyncio_task_lifecycle(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build()
    loop = RecoveryLoop(aggregator, heartbeat=0.01)
    await loop.start()
    await loop.start()  # idempotent
    assert loop.running
    assert aggregator.waker is not None
    await eventually_async(lambda: aggregator.snapshot.reason != "starting")
    # A transition wakes the loop, which evaluates on its own task.
    deps["cache"].die()
    await eventually_async(lambda: aggregator.board.snapshot.level is Level.DEGRADED)
    task = loop._task
    await loop.stop()
    assert task is not None
    assert task.done()
    assert not loop.running
    assert aggregator.waker is None
    await loop.stop()  # idempotent


async def test_loop_survives_a_failing_step(build: Build, caplog: pytest.LogCaptureFixture) -> None:
    aggregator, _ = build()
    calls = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    aggregator.reader.read = broken  # type: ignore[method-assign]
    loop = RecoveryLoop(aggregator, heartbeat=0.01)
    with caplog.at_level(logging.ERROR, logger="brownout.health"):
        await loop.start()
        await eventually_async(lambda: len(calls) >= 2)
        await loop.stop()
    assert "brownout recovery step failed" in caplog.text


def test_thread_lifecycle(build: Build) -> None:
    aggregator, deps = build()
    thread = RecoveryThread(RecoveryLoop(aggregator, heartbeat=0.01))
    thread.start()
    assert thread.running
    eventually(lambda: aggregator.snapshot.reason != "starting")
    deps["cache"].die()
    eventually(lambda: aggregator.board.snapshot.level is Level.DEGRADED)
    thread.stop()
    assert not thread.running
    assert aggregator.waker is None


async def test_a_probe_reaches_the_dependency_through_its_own_open_breaker(
    build: Build, clock: FakeClock
) -> None:
    aggregator, deps = build()
    cache = deps["cache"]
    loop = RecoveryLoop(aggregator, [Probe("cache", cache.call)], random_source=FixedRandom())
    cache.die()
    await loop.step()
    await run_for(loop, clock, 10)
    # The probe went through the guarded call while the breaker was open; its failure
    # did not re-open or extend anything.
    assert loop.attempts[-1].ok is False
    assert loop.attempts[-1].error == "ConnectionError"
    assert cache.breaker.state is BreakerState.OPEN
    cache.up = True
    await run_for(loop, clock, 20)
    assert loop.attempts[-1].ok
    assert cache.breaker.state is BreakerState.HALF_OPEN
    # Outside a probe, the open breaker still refuses.
    cache.breaker.on_error(cache.breaker.acquire(), clock(), ConnectionError())
    with pytest.raises(CircuitOpenError):
        cache.call()


async def test_a_half_open_breaker_without_calls_is_closed_by_the_next_probe(
    build: Build, clock: FakeClock
) -> None:
    """The level switched off the features whose calls would close the half-open breaker:
    probes must finish the job, or the service never climbs back."""
    aggregator, deps = build(smoothing_seconds=0)
    cache = deps["cache"]
    loop = RecoveryLoop(aggregator, [Probe("cache", cache.call)], random_source=FixedRandom())
    cache.die()
    cache.up = True
    await loop.step()
    await run_for(loop, clock, 10)
    assert cache.breaker.state is BreakerState.HALF_OPEN  # first probe: open period ended
    await loop.step()
    assert loop.next_probe_at("cache") is not None  # half-open still awaits probes
    await run_for(loop, clock, 10)  # no real call came; the next probe closes it
    assert cache.breaker.state is BreakerState.CLOSED
    assert loop.next_probe_at("cache") is None
    assert [attempt.ok for attempt in loop.attempts] == [True, True]
