"""Health: component scores, the degradation level, cascades and recovery."""

from brownout.health.aggregator import HealthAggregator
from brownout.health.history import Contributor, LevelChange
from brownout.health.probes import (
    Probe,
    openai_models_list,
    redis_ping,
    s3_head_bucket,
    sqlalchemy_select_one,
)
from brownout.health.recovery import ProbeAttempt, RecoveryLoop, RecoveryThread
from brownout.health.service import HealthService
from brownout.health.snapshot import (
    BreakerStatus,
    ComponentHealth,
    ComponentState,
    Snapshot,
    SnapshotBoard,
    board,
)

__all__ = [
    "BreakerStatus",
    "ComponentHealth",
    "ComponentState",
    # aggregator, recovery loop and probes
    "Contributor",
    "HealthAggregator",
    "HealthService",
    "LevelChange",
    "Probe",
    "ProbeAttempt",
    "RecoveryLoop",
    "RecoveryThread",
    "Snapshot",
    "SnapshotBoard",
    "board",
    "openai_models_list",
    "redis_ping",
    "s3_head_bucket",
    "sqlalchemy_select_one",
]
