"""Bad configuration fails loudly and names the field; the registry keeps names unique."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from brownout import BreakerConfig, BreakerRegistry, BreakerState, Transition
from brownout.testing import FakeClock


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("window_size", -1, "greater than or equal to 1"),
        ("bucket_seconds", 0, "greater than 0"),
        ("failure_rate_threshold", 150, "less than or equal to 100"),
        ("slow_call_rate_threshold", 0, "greater than 0"),
        ("half_open_permits", 0, "greater than or equal to 1"),
        ("open_seconds", float("nan"), "finite number"),
        ("jitter", 1.0, "less than 1"),
        ("window", "sliding", "'time' or 'count'"),
        ("minimum_calls", "ten", "valid integer"),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        BreakerConfig(**{field: value})  # type: ignore[arg-type]
    text = str(raised.value)
    assert field in text
    assert message in text


def test_unknown_settings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="failure_threshold\n  Extra inputs are not"):
        BreakerConfig(failure_threshold=5)  # type: ignore[call-arg]


def test_relations_between_fields_are_checked() -> None:
    with pytest.raises(ValidationError, match=r"open_max_seconds \(5.0\) must be >= open_seconds"):
        BreakerConfig(open_seconds=10, open_max_seconds=5)


def test_exception_lists_must_hold_exception_classes() -> None:
    with pytest.raises(ValidationError, match="record_exceptions"):
        BreakerConfig(record_exceptions=(ValueError, "TimeoutError"))  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    config = BreakerConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.open_seconds = 1  # type: ignore[misc]


def test_unknown_state_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown breaker state 'shut'; use one of: closed, open"):
        BreakerState.parse("shut")
    assert BreakerState.parse(" Half_Open ") is BreakerState.HALF_OPEN


def test_registry_gets_or_creates_by_unique_name() -> None:
    registry = BreakerRegistry()
    first = registry.breaker("redis://cache:6379/0", component="cache")
    assert registry.breaker("redis://cache:6379/0", component="cache") is first
    assert "redis://cache:6379/0" in registry
    assert len(registry) == 1
    assert registry.get("redis://cache:6379/0") is first
    with pytest.raises(ValueError, match="already exists for component 'cache', not 'database'"):
        registry.breaker("redis://cache:6379/0", component="database")
    with pytest.raises(ValueError, match="different config"):
        registry.breaker("redis://cache:6379/0", component="cache",
                         config=BreakerConfig(open_seconds=1))  # fmt: skip
    with pytest.raises(KeyError, match="no breaker named 'db'; known breakers: redis"):
        registry.get("db")
    registry.remove("redis://cache:6379/0")
    assert list(registry) == []


def test_registry_listeners_hear_breakers_created_later() -> None:
    clock = FakeClock()
    registry = BreakerRegistry(default_config=BreakerConfig(consecutive_failures=1), clock=clock)
    heard: list[Transition] = []
    registry.add_listener(heard.append)
    breaker = registry.breaker("payments")
    assert breaker.clock is clock
    breaker.on_error(breaker.acquire(), clock(), ConnectionError())
    assert [(e.breaker, e.to_state) for e in heard] == [("payments", BreakerState.OPEN)]
    registry.remove_listener(heard.append)
    breaker.reset()
    assert len(heard) == 1


def test_invalid_names_are_refused() -> None:
    registry = BreakerRegistry()
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        registry.breaker("")
    with pytest.raises(ValueError, match="component must be a non-empty string"):
        registry.breaker("x", component="")
