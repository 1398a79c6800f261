"""The aggregator's output: one immutable snapshot, swapped atomically.

Readers (the middleware on every request, client instrumentations enforcing features)
read ``board.snapshot``: one attribute read, no lock, no I/O.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from brownout.breaker import BreakerState
from brownout.features import DEFAULT_MATRIX, FeatureMatrix, LevelPolicy
from brownout.levels import Level

logger = logging.getLogger("brownout.health")


class ComponentState(enum.IntEnum):
    HEALTHY = 0
    DEGRADED = 1
    FAILING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    name: str
    state: BreakerState
    retry_after: float | None
    """Seconds until it admits a probe (0: admits now; ``None``: forced open)."""


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    name: str
    score: float
    state: ComponentState
    breakers: tuple[BreakerStatus, ...] = ()
    predicted_recovery: float | None = None
    """Seconds until the component is expected to serve again, when it is down."""

    @property
    def all_open(self) -> bool:
        """Every breaker of the component rejects calls: it is down for this process."""
        return bool(self.breakers) and all(
            status.state in (BreakerState.OPEN, BreakerState.FORCED_OPEN)
            for status in self.breakers
        )


_EMPTY: Mapping[str, ComponentHealth] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Snapshot:
    level: Level = Level.OPTIMAL
    score: float = 100.0
    since: float = 0.0
    """Monotonic clock reading when ``level`` was entered."""
    reason: str = "starting"
    components: Mapping[str, ComponentHealth] = field(default_factory=lambda: _EMPTY)
    policy: LevelPolicy = field(default_factory=lambda: DEFAULT_MATRIX.policy(Level.OPTIMAL))
    """What is on at ``level`` under the matrix in force."""
    override: str | None = None
    """Why the level is pinned by an operator, when it is."""
    retry_after: float = 1.0
    """Seconds a client should wait before retrying work this level rejects."""

    def enabled(self, feature: str) -> bool:
        return feature in self.policy.enabled


Subscriber = Callable[[Snapshot, Snapshot], None]


class SnapshotBoard:
    """Holds the current snapshot; the aggregator publishes, everyone else reads."""

    def __init__(self, matrix: FeatureMatrix = DEFAULT_MATRIX) -> None:
        self.matrix = matrix
        self.snapshot = Snapshot(policy=matrix.policy(Level.OPTIMAL))
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    def publish(self, snapshot: Snapshot) -> None:
        """Swap in ``snapshot``; subscribers hear ``(old, new)`` when the level changed."""
        previous, self.snapshot = self.snapshot, snapshot
        if previous.level is snapshot.level:
            return
        for subscriber in self._subscribers:
            try:
                subscriber(previous, snapshot)
            except Exception:
                logger.exception("snapshot subscriber %r failed", subscriber)

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s != subscriber)


board = SnapshotBoard()
"""The process-wide board: the default aggregator publishes here, and the middleware and
client instrumentations read from here unless given another."""
