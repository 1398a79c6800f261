"""Settings from code, environment and TOML; invalid values name the field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from brownout.features import DEFAULT_MATRIX
from brownout.levels import Level
from brownout.settings import BrownoutSettings, HealthSettings, SettingsError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BROWNOUT_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    health = BrownoutSettings.load().health
    assert health.weights == {
        "database": 0.4, "cache": 0.2, "openai": 0.2, "s3": 0.1, "external": 0.1
    }  # fmt: skip
    assert health.thresholds.as_tuple() == (90, 70, 50, 25)
    assert (health.margin, health.dwell_seconds, health.heartbeat_seconds) == (5, 30, 1)
    assert health.floors == {"database": {"critical": Level.LIMITED}}
    assert health.feature_matrix() is DEFAULT_MATRIX


def test_environment_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWNOUT_HEALTH__DWELL_SECONDS", "12")
    monkeypatch.setenv("BROWNOUT_HEALTH__WEIGHTS__DATABASE", "0.6")
    monkeypatch.setenv("BROWNOUT_HEALTH__SLAS__CACHE__LATENCY_WARN_SECONDS", "0.02")
    monkeypatch.setenv("BROWNOUT_HEALTH__PROBES__KINDS__OPENAI", "false")
    monkeypatch.setenv("BROWNOUT_HEALTH__AUTOMATIC", "false")
    health = BrownoutSettings.load().health
    assert health.dwell_seconds == 12
    # One variable changes one weight; the others keep their defaults.
    assert health.weights["database"] == 0.6
    assert health.weights["cache"] == 0.2
    assert health.slas["cache"].latency_warn_seconds == 0.02
    assert health.slas["cache"].latency_critical_seconds == 0.05
    assert health.probes.kinds.openai is False
    assert health.probes.kinds.redis is True
    assert health.automatic is False


def test_toml_with_env_and_code_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "brownout.toml"
    path.write_text(
        """
[health]
dwell_seconds = 45
margin = 2
components = ["payments"]

[health.weights]
s3 = 0
payments = 0.3

[health.floors.payments]
failing = "minimal"

[[health.metrics]]
component = "database"
instrument = "db.client.operation.duration"

[health.features]
features = ["search"]
[health.features.enabled]
optimal = ["read", "write", "cache_read", "cache_write", "ai", "search"]
degraded = ["read", "write", "search"]
limited = ["read", "write"]
minimal = ["read"]
emergency = []
[health.features.batch]
optimal = 1.0
degraded = 0.5
"""
    )
    monkeypatch.setenv("BROWNOUT_HEALTH__MARGIN", "3")
    health = BrownoutSettings.load(path, health={"heartbeat_seconds": 2}).health
    assert health.dwell_seconds == 45  # TOML
    assert health.margin == 3  # environment beats TOML
    assert health.heartbeat_seconds == 2  # code
    assert health.weights["payments"] == 0.3
    assert health.weights["s3"] == 0
    assert health.floors == {"payments": {"failing": Level.MINIMAL}}
    assert health.metrics[0].instrument == "db.client.operation.duration"
    matrix = health.feature_matrix()
    assert matrix.policy(Level.DEGRADED).allows("search")
    assert matrix.policy(Level.DEGRADED).batch_multiplier == 0.5
    assert not matrix.policy(Level.LIMITED).allows("batch")


@pytest.mark.parametrize(
    ("values", "path", "fix"),
    [
        (
            {"weights": {"database": 0, "cache": 0, "openai": 0, "s3": 0, "external": 0}},
            "health.weights",
            "give at least one component a weight above 0",
        ),
        ({"weights": {"search": 1}}, "health.weights", "add it to health.components"),
        ({"slas": {"queue": {}}}, "health.slas", "unknown component 'queue'"),
        (
            {"thresholds": {"degraded": 95}},
            "health.thresholds",
            "optimal (90.0) must be above degraded (95.0)",
        ),
        (
            {"slas": {"database": {"latency_critical_seconds": 0.05}}},
            "health.slas.database",
            "must be above latency_warn_seconds",
        ),
        ({"floors": {"cache": {"down": "limited"}}}, "health.floors", "use one of: healthy"),
        (
            {"floors": {"cache": {"critical": "worst"}}},
            "health.floors.cache.critical",
            "unknown level 'worst'",
        ),
        (
            {"cascade": {"impact": {"database": {"queue": 0.5}}}},
            "health",
            "cascade.impact: unknown component 'queue'",
        ),
        (
            {"features": {"enabled": {"optimal": ["read"]}, "batch": {}}},
            "health.features",
            "level 'degraded' is missing",
        ),
        ({"dwell_seconds": -1}, "health.dwell_seconds", "greater than or equal to 0"),
        ({"dwell": 3}, "health.dwell", "Extra inputs are not permitted"),
    ],
)
def test_invalid_values_name_the_field(values: dict[str, object], path: str, fix: str) -> None:
    with pytest.raises(SettingsError) as caught:
        BrownoutSettings.load(health=values)
    message = str(caught.value)
    assert f"  {path}: " in message
    assert fix in message
    assert "Traceback" not in message


def test_invalid_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWNOUT_HEALTH__MARGIN", "lots")
    with pytest.raises(SettingsError, match=r"health\.margin: Input should be a valid number"):
        BrownoutSettings.load()


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[health]\nmargin = 200\n")
    with pytest.raises(SettingsError, match=r"health\.margin: Input should be less than 100"):
        BrownoutSettings.load(path)
    with pytest.raises(SettingsError, match="does not exist"):
        BrownoutSettings.load(tmp_path / "missing.toml")


def test_health_settings_usable_alone() -> None:
    health = HealthSettings(components=("payments",), weights={"payments": 0.5})
    assert health.known_components[-1] == "payments"
    assert health.sla("payments") == health.slas["external"]
