"""The chaos script: what breaks in each phase and the level brownout should reach."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from brownout import Level
from examples.demo import tuning
from examples.demo.chaos import Chaos

Status = dict[str, Any]
"""The admin API's status document."""


@dataclass(frozen=True)
class Expectation:
    description: str
    check: Callable[[Status], bool]


def level_of(status: Status) -> Level:
    return Level.parse(status["level"])


def breaker_states(status: Status, component: str) -> list[str]:
    component_status = status.get("control", {}).get("components", {}).get(component, {})
    return [breaker["state"] for breaker in component_status.get("breakers", [])]


def exactly(level: Level) -> Expectation:
    return Expectation(level.label, lambda status: level_of(status) is level)


def worse_than(level: Level) -> Expectation:
    return Expectation(f"worse than {level.label}", lambda status: level_of(status) > level)


def ai_off_at(level: Level) -> Expectation:
    def check(status: Status) -> bool:
        return (
            level_of(status) is level
            and "ai" not in status["enabled"]
            and "open" in breaker_states(status, "openai")
        )

    return Expectation(f"{level.label}, ai off, OpenAI breaker open", check)


@dataclass(frozen=True)
class Phase:
    title: str
    story: str
    inject: Callable[[Chaos], None]
    expect: Expectation


def _nothing(chaos: Chaos) -> None:
    return None


def _slow_database(chaos: Chaos) -> None:
    chaos.slow_database(tuning.DATABASE_LATENCY_SECONDS)


def _openai_rate_limits(chaos: Chaos) -> None:
    chaos.slow_database(0)
    chaos.rate_limit_openai(True)


def _s3_hangs(chaos: Chaos) -> None:
    chaos.hang_s3(True)


PHASES: tuple[Phase, ...] = (
    Phase(
        "baseline",
        "every dependency healthy",
        _nothing,
        exactly(Level.OPTIMAL),
    ),
    Phase(
        "cache dies",
        "redis-server is killed: reads fall through to the database, cache writes stop",
        Chaos.kill_cache,
        exactly(Level.DEGRADED),
    ),
    Phase(
        "database slows down",
        f"every statement waits {tuning.DATABASE_LATENCY_SECONDS * 1000:.0f} ms (cache still down)",
        _slow_database,
        worse_than(Level.DEGRADED),
    ),
    Phase(
        "OpenAI rate-limits",
        "the database is fast again and the level climbs back, so AI calls resume and "
        "meet 429s until OpenAI's breaker opens (cache still down)",
        _openai_rate_limits,
        ai_off_at(Level.LIMITED),
    ),
    Phase(
        "S3 times out",
        "S3 swallows requests: uploads time out, then fail fast; writes are shed",
        _s3_hangs,
        exactly(Level.MINIMAL),
    ),
    Phase(
        "recovery",
        "redis restarted, OpenAI and S3 answer again: probes reopen the way",
        Chaos.restore_all,
        exactly(Level.OPTIMAL),
    ),
)


@dataclass(frozen=True)
class Profile:
    name: str
    hold_seconds: float
    """How long each phase runs on after reaching its level (traffic keeps flowing)."""
    deadline_seconds: float
    """How long a fault phase may take to reach its level."""
    recovery_deadline_seconds: float
    clients: int
    rate: float
    """Requests per second, all clients together."""


PROFILES = {
    "full": Profile("full", 9.0, 25.0, 60.0, clients=4, rate=24.0),
    "short": Profile("short", 2.0, 20.0, 45.0, clients=3, rate=18.0),
}
