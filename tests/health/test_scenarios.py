"""Scenarios on a fake clock driving real breakers: outages move the level, recovery
climbs back one level per dwell."""

from __future__ import annotations

import contextlib

import pytest

from brownout import BreakerState, CircuitOpenError
from brownout.health import ComponentState
from brownout.levels import Level
from brownout.testing import FakeClock
from tests.health.conftest import Build, Dependency


def test_healthy_service_is_optimal(build: Build) -> None:
    aggregator, _ = build()
    snapshot = aggregator.tick()
    assert snapshot.level is Level.OPTIMAL
    assert snapshot.score == pytest.approx(100)
    assert set(snapshot.components) == {"database", "cache", "openai", "s3", "external"}


def test_cache_dies_degraded_at_next_evaluation(build: Build) -> None:
    aggregator, deps = build()
    aggregator.evaluate()
    deps["cache"].die()
    snapshot = aggregator.evaluate()
    assert snapshot.level is Level.DEGRADED
    assert snapshot.score == pytest.approx(80)
    cache = snapshot.components["cache"]
    assert cache.state is ComponentState.CRITICAL
    assert cache.all_open
    assert "cache critical (breakers open" in snapshot.reason
    assert not snapshot.enabled("cache_write")
    assert snapshot.enabled("ai")
    # The breaker's open period is the prediction and the Retry-After.
    assert snapshot.retry_after == pytest.approx(10, abs=0.01)
    assert cache.predicted_recovery == pytest.approx(10, abs=0.01)


def test_database_dies_limited(build: Build) -> None:
    aggregator, deps = build()
    deps["database"].die()
    snapshot = aggregator.evaluate()
    assert snapshot.level is Level.LIMITED
    # The impact matrix: a database outage costs the cache a quarter of its health.
    assert snapshot.components["cache"].score == pytest.approx(75)
    assert snapshot.score == pytest.approx(55)
    assert "impacted by database" in snapshot.reason
    assert snapshot.enabled("write")
    assert not snapshot.enabled("ai")


def test_database_floor_holds_limited_even_with_a_generous_score(build: Build) -> None:
    # With a small database weight the score alone would say DEGRADED; the floor
    # "database critical => at least limited" wins.
    aggregator, deps = build(weights={"database": 0.1}, cascade={"impact": {}})
    deps["database"].die()
    snapshot = aggregator.evaluate()
    assert snapshot.score > 85
    assert snapshot.level is Level.LIMITED
    assert "database critical: at least limited" in snapshot.reason


def test_cache_and_openai_die_limited(build: Build) -> None:
    aggregator, deps = build()
    deps["cache"].die()
    deps["openai"].die()
    snapshot = aggregator.evaluate()
    assert snapshot.score == pytest.approx(60)
    assert snapshot.level is Level.LIMITED


def test_everything_dies_emergency(build: Build) -> None:
    aggregator, deps = build()
    for dep in deps.values():
        dep.die()
    snapshot = aggregator.evaluate()
    assert snapshot.score == pytest.approx(0)
    assert snapshot.level is Level.EMERGENCY
    assert snapshot.policy.enabled == {"health"}
    assert "simultaneous failures" in snapshot.reason


def test_simultaneous_failures_floor(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build()
    for name in ("cache", "openai", "s3"):
        deps[name].die()
    snapshot = aggregator.evaluate()
    # 100 - 20 - 20 - 10 = 50 is LIMITED by score; three components down within a
    # minute is an incident: at least MINIMAL.
    assert snapshot.score == pytest.approx(50)
    assert snapshot.level is Level.MINIMAL
    assert "simultaneous failures: cache, openai, s3" in snapshot.reason


def test_failures_spread_out_are_not_simultaneous(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build(cascade={"simultaneous_window_seconds": 5})
    for name in ("cache", "openai", "s3"):
        deps[name].die()
        clock.advance(6)
        # Keep the earlier outages going: their breakers stay open without traffic.
        aggregator.evaluate()
    assert aggregator.evaluate().level is Level.LIMITED


def test_weights_renormalise_without_s3(build: Build) -> None:
    aggregator, deps = build(components=("database", "cache", "openai", "external"))
    deps["cache"].die()
    snapshot = aggregator.evaluate()
    assert "s3" not in snapshot.components
    assert snapshot.score == pytest.approx(100 * (1 - 0.2 / 0.9))
    deps["openai"].die()
    snapshot = aggregator.evaluate()
    assert snapshot.score == pytest.approx(100 * (1 - 0.4 / 0.9))
    assert snapshot.level is Level.LIMITED


def run_until_optimal(aggregator, clock: FakeClock, limit: float) -> list[tuple[float, Level]]:  # type: ignore[no-untyped-def]
    """Tick once a second; return (seconds from start, new level) at each change."""
    start = clock()
    changes = []
    level = aggregator.snapshot.level
    while clock() - start <= limit:
        clock.advance(1)
        snapshot = aggregator.tick()
        if snapshot.level is not level:
            level = snapshot.level
            changes.append((clock() - start, level))
        if level is Level.OPTIMAL:
            break
    return changes


# Recovery timing tests turn smoothing off so the dwell is measured from the moment the
# breakers close; test_one_bad_second_does_not_swing_the_score covers smoothing.


def test_recovery_climbs_one_level_per_dwell(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build(smoothing_seconds=0)
    deps["database"].die()
    assert aggregator.tick().level is Level.LIMITED
    deps["database"].heal()
    snapshot = aggregator.tick()
    # Healthy again by score, but improving waits for the dwell.
    assert snapshot.score >= 95
    assert snapshot.level is Level.LIMITED
    assert snapshot.retry_after == pytest.approx(30, abs=1)
    changes = run_until_optimal(aggregator, clock, limit=120)
    assert changes == [(30, Level.DEGRADED), (60, Level.OPTIMAL)]
    history = aggregator.history()
    assert [(c.old, c.new) for c in history] == [
        (Level.OPTIMAL, Level.LIMITED),
        (Level.LIMITED, Level.DEGRADED),
        (Level.DEGRADED, Level.OPTIMAL),
    ]
    assert "recovering" in history[-1].reason
    # The outage was recorded once its breakers closed.
    assert len(aggregator.outage_durations("database")) == 1


def test_improving_needs_the_margin(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build(smoothing_seconds=0)
    deps["cache"].die()
    assert aggregator.evaluate().level is Level.DEGRADED
    # A score of 92 is OPTIMAL by threshold (90) but not above it by the 5-point margin.
    aggregator._tracks["cache"].smoothed.value = 60.0
    deps["cache"].heal()
    for _ in range(100):
        clock.advance(1)
        snapshot = aggregator.evaluate()
    assert snapshot.score == pytest.approx(92)
    assert snapshot.level is Level.DEGRADED


def test_a_new_failure_during_the_dwell_restarts_it(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build(smoothing_seconds=0)
    deps["cache"].die()
    aggregator.tick()
    deps["cache"].heal()
    clock.advance(20)
    aggregator.tick()
    deps["openai"].die()
    snapshot = aggregator.tick()
    assert snapshot.level is Level.DEGRADED
    assert "openai critical" in snapshot.reason
    deps["openai"].heal()
    aggregator.tick()
    # The 20 s the cache had already qualified for do not count: a full dwell again.
    assert run_until_optimal(aggregator, clock, limit=200) == [(30, Level.OPTIMAL)]


def test_flapping_lengthens_the_dwell(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build(smoothing_seconds=0)
    cache = deps["cache"]
    for _ in range(2):
        cache.die()
        aggregator.tick()
        cache.heal()
        clock.advance(5)
    cache.die()
    snapshot = aggregator.tick()
    assert snapshot.level is Level.DEGRADED
    assert "flapping: cache (dwell 60 s)" in snapshot.reason
    status = aggregator.status()
    assert status["components"]["cache"]["flapping"] is True
    assert status["components"]["cache"]["opens"] == 3
    assert status["most_failing"] == "cache"
    cache.heal()
    aggregator.tick()
    changes = run_until_optimal(aggregator, clock, limit=200)
    assert changes == [(60, Level.OPTIMAL)]


def test_flapping_ends_after_its_window(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build(smoothing_seconds=0, cascade={"flap_window_seconds": 100})
    cache = deps["cache"]
    for _ in range(3):
        cache.die()
        aggregator.tick()
        cache.heal()
    clock.advance(101)
    cache.die()
    aggregator.tick()
    cache.heal()
    aggregator.tick()
    changes = run_until_optimal(aggregator, clock, limit=200)
    assert changes == [(30, Level.OPTIMAL)]


def test_most_failing_component(build: Build) -> None:
    aggregator, deps = build()
    for _ in range(2):
        deps["s3"].die()
        deps["s3"].heal()
    deps["openai"].die()
    assert aggregator.most_failing() == "s3"


def test_override_expires_after_ttl(build: Build, clock: FakeClock) -> None:
    aggregator, _ = build()
    snapshot = aggregator.force_level("minimal", ttl=60, reason="load test")
    assert snapshot.level is Level.MINIMAL
    assert snapshot.override == "forced: load test"
    assert snapshot.retry_after == pytest.approx(60)
    assert not snapshot.enabled("write")
    clock.advance(59)
    assert aggregator.tick().level is Level.MINIMAL
    clock.advance(1)
    snapshot = aggregator.tick()
    assert snapshot.level is Level.OPTIMAL
    assert snapshot.override is None
    history = aggregator.history()
    assert history[0].override == "forced: load test"
    assert (history[-1].old, history[-1].new) == (Level.MINIMAL, Level.OPTIMAL)


def test_clear_overrides(build: Build) -> None:
    aggregator, deps = build()
    deps["cache"].die()
    aggregator.force_level(Level.EMERGENCY, reason="maintenance")
    assert aggregator.evaluate().level is Level.EMERGENCY
    snapshot = aggregator.clear_overrides()
    # Back to what the dependencies say, at once (no dwell after an override).
    assert snapshot.level is Level.DEGRADED
    assert snapshot.override is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ttl": 0, "reason": "x"}, "ttl must be a positive number"),
        ({"ttl": 10, "reason": " "}, "reason must be a non-empty string"),
    ],
)
def test_bad_overrides_are_refused(build: Build, kwargs: dict[str, object], message: str) -> None:
    aggregator, _ = build()
    with pytest.raises(ValueError, match=message):
        aggregator.force_level("limited", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown level 'worse'"):
        aggregator.force_level("worse", reason="x")


def test_master_switch_off_pins_optimal(build: Build) -> None:
    aggregator, deps = build(automatic=False)
    for dep in deps.values():
        dep.die()
    snapshot = aggregator.evaluate()
    assert snapshot.level is Level.OPTIMAL
    assert snapshot.override == "automatic degradation is off"
    # The components still show what is wrong, and the breakers still protect calls.
    assert snapshot.components["database"].state is ComponentState.CRITICAL
    with pytest.raises(CircuitOpenError):
        deps["database"].call()
    assert deps["database"].breaker.state is BreakerState.OPEN
    # Switched on at runtime: the level follows the dependencies at once.
    assert aggregator.set_automatic(True).level is Level.EMERGENCY
    # Clearing overrides restores what settings say: off.
    assert aggregator.clear_overrides().level is Level.OPTIMAL


def test_forced_level_wins_over_master_switch(build: Build) -> None:
    aggregator, _ = build(automatic=False)
    assert aggregator.force_level("degraded", reason="drill").level is Level.DEGRADED


def test_transitions_wake_the_aggregator(build: Build) -> None:
    aggregator, deps = build()
    board = aggregator.board
    seen: list[tuple[Level, Level]] = []
    board.subscribe(lambda old, new: seen.append((old.level, new.level)))
    deps["cache"].die()
    # No explicit evaluation: the breaker's transition evaluated and published.
    assert board.snapshot.level is Level.DEGRADED
    assert seen == [(Level.OPTIMAL, Level.DEGRADED)]


def test_history_is_bounded(build: Build, clock: FakeClock) -> None:
    aggregator, _ = build(history_size=3)
    for level in ("degraded", "limited", "minimal", "emergency", "limited"):
        aggregator.force_level(level, reason="drill")
    history = aggregator.history()
    assert len(history) == 3
    assert [c.new for c in history] == [Level.MINIMAL, Level.EMERGENCY, Level.LIMITED]


def failing_second(deps: dict[str, Dependency], clock: FakeClock) -> None:
    """One second in which 3 of 10 database calls fail (not enough to trip)."""
    database = deps["database"]
    for index in range(10):
        database.up = index % 3 != 0 or index == 9
        with contextlib.suppress(ConnectionError):
            database.call()
    database.up = True
    clock.advance(1)


@pytest.mark.parametrize(("smoothing", "level"), [(5.0, Level.OPTIMAL), (0.0, Level.LIMITED)])
def test_one_bad_second_does_not_swing_the_score(
    build: Build, clock: FakeClock, smoothing: float, level: Level
) -> None:
    aggregator, deps = build(smoothing_seconds=smoothing)
    aggregator.tick()
    failing_second(deps, clock)
    snapshot = aggregator.tick()
    assert deps["database"].breaker.state is BreakerState.CLOSED
    assert "errors 30%" in (snapshot.reason + aggregator._tracks["database"].cause)
    assert snapshot.level is level


def test_sustained_errors_lower_the_level(build: Build, clock: FakeClock) -> None:
    aggregator, deps = build()
    for _ in range(10):
        failing_second(deps, clock)
        snapshot = aggregator.tick()
    assert deps["database"].breaker.state is BreakerState.CLOSED
    assert snapshot.components["database"].state is ComponentState.FAILING
    assert snapshot.level is Level.LIMITED
    assert "database failing (errors 30%)" in snapshot.reason
