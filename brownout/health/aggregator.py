"""The health aggregator: component scores -> component states -> overall score -> level.

Inputs: error rates and latencies arrive through an in-process OpenTelemetry reader
(:meth:`HealthAggregator.collect`, on the recovery loop's heartbeat); breaker states and
their ``retry_after`` are read from the registry at each evaluation, and breaker
transitions wake the aggregator at once. Output: one immutable
:class:`~brownout.health.snapshot.Snapshot` per evaluation, published on a board.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider

from brownout.breaker import Breaker, BreakerRegistry, BreakerState, Clock, Transition, breakers
from brownout.health.cascade import FailureLog, apply_impact, simultaneous
from brownout.health.changelog import log_level_change
from brownout.health.history import Contributor, LevelChange
from brownout.health.hysteresis import Hysteresis
from brownout.health.metrics import HealthMetrics
from brownout.health.outages import OutageHistory
from brownout.health.overrides import Overrides
from brownout.health.reader import HealthReader
from brownout.health.scoring import Smoothed, breaker_factor, sample_score
from brownout.health.snapshot import (
    BreakerStatus,
    ComponentHealth,
    ComponentState,
    Snapshot,
    SnapshotBoard,
    board,
)
from brownout.levels import Level
from brownout.settings import BrownoutSettings, HealthSettings
from brownout.telemetry import enable_metrics

logger = logging.getLogger("brownout.health")

_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_DOWN = frozenset({_OPEN, _HALF_OPEN, _FORCED_OPEN})
_HEALTHY = ComponentState.HEALTHY


class _Track:
    """What the aggregator remembers about one component between evaluations."""

    __slots__ = ("cause", "smoothed", "state")

    def __init__(self, settings: HealthSettings, now: float) -> None:
        self.smoothed = Smoothed(settings.smoothing_seconds, max_step=settings.heartbeat_seconds)
        self.cause = ""
        self.state = Hysteresis(settings.states.as_tuple(), settings.margin, now)


class HealthAggregator:
    """Turns breakers and metrics into one degradation level.

    ``meter_provider``: the service's SDK ``MeterProvider``; the aggregator attaches its
    reader to it and exports its own gauges through it. ``None`` uses the global provider
    when it is an SDK one, else a private provider that only the aggregator reads.
    """

    def __init__(
        self,
        settings: HealthSettings | BrownoutSettings | None = None,
        *,
        registry: BreakerRegistry = breakers,
        board: SnapshotBoard = board,
        meter_provider: MeterProvider | None = None,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(settings, BrownoutSettings):
            settings = settings.health
        self.settings = settings = settings if settings is not None else HealthSettings()
        self.registry = registry
        self.board = board
        self.clock: Clock = clock if clock is not None else registry.clock
        self.matrix = settings.feature_matrix() if settings.features is not None else board.matrix
        board.matrix = self.matrix
        self._lock = threading.RLock()
        now = self.clock()
        self._tracks: dict[str, _Track] = {}
        self._sampled: set[str] = set()
        self._level = Hysteresis(settings.thresholds.as_tuple(), settings.margin, now)
        self._failures = FailureLog(settings.cascade)
        self._outages = OutageHistory()
        self._overrides = Overrides(settings.automatic)
        self._history: deque[LevelChange] = deque(maxlen=settings.history_size)
        self._transition_counts: dict[tuple[Level, Level], int] = {}
        self._since = now
        self._warned: set[str] = set()
        self.waker: Callable[[], None] | None = None
        """Set by a running recovery loop: breaker transitions then wake the loop instead
        of evaluating on the thread whose call tripped the breaker."""

        self.meter_provider = provider = _sdk_provider(meter_provider)
        self.reader = HealthReader(settings.metrics, quantile=settings.latency_quantile)
        provider.add_metric_reader(self.reader)
        enable_metrics(provider, registry)
        self._metrics = HealthMetrics(
            lambda: self.board.snapshot, self.transition_counts, meter_provider=provider
        )
        self.snapshot = Snapshot(
            since=now, policy=self.matrix.policy(Level.OPTIMAL), reason="starting"
        )
        registry.add_listener(self._on_transition)
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening to the registry and detach the reader from the provider."""
        if self._closed:
            return
        self._closed = True
        self.registry.remove_listener(self._on_transition)
        remove = getattr(self.meter_provider, "remove_metric_reader", None)
        if remove is not None:
            remove(self.reader)

    # -- inputs ---------------------------------------------------------------------------

    def collect(self) -> None:
        """Read what the metrics saw since the last collection into each component's
        smoothed score. A component without calls in the interval counts as healthy for
        it: no news is no evidence of failure, and its breakers speak for outages."""
        samples = self.reader.read()
        with self._lock:
            now = self.clock()
            seen = self._sampled
            seen.update(samples)
            for name in seen:
                track = self._track(name, now)
                sample = samples.get(name)
                if sample is None:
                    track.smoothed.update(100.0, now)
                    track.cause = ""
                    continue
                score, cause = sample_score(sample, self.settings.sla(name))
                track.smoothed.update(score, now)
                track.cause = cause

    def tick(self) -> Snapshot:
        """One heartbeat: collect, then evaluate."""
        self.collect()
        return self.evaluate()

    def _on_transition(self, event: Transition) -> None:
        if event.to_state is _OPEN:
            with self._lock:
                self._failures.opened(event.component, event.at)
        waker = self.waker
        if waker is not None:
            waker()
        else:
            self.evaluate()

    # -- evaluation -----------------------------------------------------------------------

    def evaluate(self) -> Snapshot:
        """Score every component, pick the level and publish the snapshot."""
        with self._lock:
            snapshot = self._evaluate(self.clock())
            self.snapshot = snapshot
            self.board.publish(snapshot)
        return snapshot

    def _evaluate(self, now: float) -> Snapshot:
        settings = self.settings
        groups: dict[str, list[Breaker]] = {}
        for breaker in self.registry:
            group = groups.get(breaker.component)
            if group is None:
                groups[breaker.component] = [breaker]
            else:
                group.append(breaker)
        names = groups.keys() | self._sampled | self.reader.rule_components

        own: dict[str, float] = {}
        statuses: dict[str, tuple[BreakerStatus, ...]] = {}
        for name in names:
            track = self._track(name, now)
            group_statuses = tuple(
                BreakerStatus(b.name, b.state, b.retry_after()) for b in groups.get(name, ())
            )
            statuses[name] = group_statuses
            own[name] = track.smoothed.value * breaker_factor(s.state for s in group_statuses)
        scores, blamed = apply_impact(own, settings.cascade.impact)

        components: dict[str, ComponentHealth] = {}
        weights = settings.weights
        weighted = total_weight = 0.0
        for name in sorted(names):
            track = self._tracks[name]
            score = scores[name]
            track.state.update(score, now)
            group_statuses = statuses[name]
            down = any(status.state in _DOWN for status in group_statuses)
            ended = self._outages.update(name, down, now)
            if ended is not None:
                self._metrics.recovered(name, ended)
            prediction = self._predict(name, group_statuses, now) if down else None
            components[name] = ComponentHealth(
                name, score, ComponentState(track.state.rank), group_statuses, prediction
            )
            weight = weights.get(name)
            if weight is None:
                self._warn_unweighted(name)
                continue
            weighted += weight * score
            total_weight += weight
        # Rounded so float noise never drops an all-healthy service below a threshold.
        overall = round(weighted / total_weight, 9) if total_weight > 0 else 100.0

        floor, notes = self._floor(components)
        dwell, flapping = self._failures.dwell(settings.dwell_seconds, now)
        if flapping:
            notes.append(f"flapping: {', '.join(flapping)} (dwell {dwell:.0f} s)")
        previous_auto = Level(self._level.rank)
        climbed = self._level.update(overall, now, dwell, int(floor))
        automatic = Level(self._level.rank)

        override = self._overrides.current(now)
        level = override[0] if override is not None else automatic
        reason = self._reason(
            override, components, blamed, notes, overall, climbed and automatic < previous_auto
        )
        previous = self.snapshot
        since = previous.since
        if level is not previous.level:
            since = now
            self._record_change(previous.level, level, overall, reason, components, now, override)
        return Snapshot(
            level=level,
            score=overall,
            since=since,
            reason=reason,
            components=MappingProxyType(components),
            policy=self.matrix.policy(level),
            override=override[1] if override is not None else None,
            retry_after=self._retry_after(level, components, dwell, now),
        )

    def _track(self, name: str, now: float) -> _Track:
        track = self._tracks.get(name)
        if track is None:
            track = self._tracks[name] = _Track(self.settings, now)
        return track

    def _predict(self, name: str, statuses: tuple[BreakerStatus, ...], now: float) -> float | None:
        etas = [
            status.retry_after
            for status in statuses
            if status.state in _DOWN and status.retry_after is not None
        ]
        return self._outages.predict(name, min(etas) if etas else None, now)

    def _floor(self, components: Mapping[str, ComponentHealth]) -> tuple[Level, list[str]]:
        floor = Level.OPTIMAL
        notes = []
        for name, rules in self.settings.floors.items():
            health = components.get(name)
            if health is None:
                continue
            for state_name, level in rules.items():
                if health.state >= ComponentState[state_name.upper()] and level > floor:
                    floor = level
                    notes.append(f"{name} {health.state.label}: at least {level.label}")
        cascade = self.settings.cascade
        group = simultaneous(
            self._outages.starts(),
            cascade.simultaneous_window_seconds,
            cascade.simultaneous_components,
        )
        if group:
            notes.append(f"simultaneous failures: {', '.join(group)}")
            floor = max(floor, cascade.simultaneous_floor)
        return floor, notes

    def _reason(
        self,
        override: tuple[Level, str] | None,
        components: Mapping[str, ComponentHealth],
        blamed: Mapping[str, str],
        notes: list[str],
        overall: float,
        recovered: bool,
    ) -> str:
        if override is not None:
            return override[1]
        parts = [f"score {overall:.0f}"]
        if recovered:
            parts.append("recovering one level per dwell")
        for name, health in components.items():
            if health.state is _HEALTHY:
                continue
            parts.append(f"{name} {health.state.label} ({self._causes(health, blamed)})")
        parts.extend(notes)
        return "; ".join(parts)

    def _causes(self, health: ComponentHealth, blamed: Mapping[str, str]) -> str:
        causes = []
        states = [status.state for status in health.breakers]
        down = sum(1 for state in states if state is _OPEN or state is _FORCED_OPEN)
        if down:
            causes.append("breakers open" if down == len(states) else f"{down}/{len(states)} open")
        if _HALF_OPEN in states:
            causes.append("half-open")
        cause = self._tracks[health.name].cause
        if cause:
            causes.append(cause)
        source = blamed.get(health.name)
        if source is not None:
            causes.append(f"impacted by {source}")
        return ", ".join(causes) or f"score {health.score:.0f}"

    def _retry_after(
        self, level: Level, components: Mapping[str, ComponentHealth], dwell: float, now: float
    ) -> float:
        forced = self._overrides.seconds_left(now)
        if forced is not None:
            return max(1.0, forced)
        etas = [
            health.predicted_recovery
            for health in components.values()
            if health.predicted_recovery is not None
        ]
        if etas:
            return max(1.0, min(etas))
        if level is not Level.OPTIMAL:
            return max(1.0, self._level.dwell_left(now, dwell))
        return 1.0

    def _record_change(
        self,
        old: Level,
        new: Level,
        score: float,
        reason: str,
        components: Mapping[str, ComponentHealth],
        now: float,
        override: tuple[Level, str] | None,
    ) -> None:
        change = LevelChange(
            at=now,
            old=old,
            new=new,
            score=score,
            reason=reason,
            contributors=self._contributors(components),
            override=override[1] if override is not None else None,
        )
        self._history.append(change)
        key = (old, new)
        self._transition_counts[key] = self._transition_counts.get(key, 0) + 1
        log_level_change(change)

    def _contributors(
        self, components: Mapping[str, ComponentHealth], top: int = 3
    ) -> tuple[Contributor, ...]:
        weights = self.settings.weights
        total = sum(weights.get(name, 0.0) for name in components)
        if total <= 0:
            return ()
        lost = [
            Contributor(name, health.score, weights.get(name, 0.0) / total * (100 - health.score))
            for name, health in components.items()
        ]
        lost = [item for item in lost if item.points > 0.005]
        lost.sort(key=lambda item: (-item.points, item.component))
        return tuple(lost[:top])

    def _warn_unweighted(self, name: str) -> None:
        if name in self._warned:
            return
        self._warned.add(name)
        logger.warning(
            "component %r has no weight and does not count toward the health score; add it "
            "to health.components and health.weights",
            name,
        )

    # -- overrides ------------------------------------------------------------------------

    def force_level(
        self, level: Level | str | int, *, reason: str, ttl: float | None = None
    ) -> Snapshot:
        """Pin the level for ``ttl`` seconds (until cleared when ``None``)."""
        with self._lock:
            self._overrides.force(level, ttl, reason, self.clock())
        return self.evaluate()

    def set_automatic(self, enabled: bool) -> Snapshot:
        """The master switch: off pins OPTIMAL (breakers still protect calls)."""
        with self._lock:
            self._overrides.automatic = bool(enabled)
        return self.evaluate()

    def clear_overrides(self) -> Snapshot:
        """Drop the forced level and restore the master switch to the settings' value."""
        with self._lock:
            self._overrides.clear()
        return self.evaluate()

    # -- reading --------------------------------------------------------------------------

    @property
    def automatic(self) -> bool:
        return self._overrides.automatic

    def history(self) -> tuple[LevelChange, ...]:
        """The last ``history_size`` level changes, oldest first."""
        with self._lock:
            return tuple(self._history)

    def transition_counts(self) -> dict[tuple[Level, Level], int]:
        return dict(self._transition_counts)

    def most_failing(self) -> str | None:
        """The component whose breakers opened most often."""
        with self._lock:
            return self._failures.most_frequent()

    def outage_durations(self, component: str) -> tuple[float, ...]:
        with self._lock:
            return self._outages.durations(component)

    def status(self) -> dict[str, Any]:
        """Everything an admin API shows, JSON-ready."""
        snapshot = self.snapshot
        now = self.clock()
        with self._lock:
            forced = self._overrides.forced
            failures = self._failures
            flapping = failures.flapping(now)
            opens = failures.totals()
            most = failures.most_frequent()
        return {
            "level": snapshot.level.label,
            "score": round(snapshot.score, 2),
            "since_seconds": round(max(0.0, now - snapshot.since), 3),
            "reason": snapshot.reason,
            "retry_after": round(snapshot.retry_after, 3),
            "features": sorted(snapshot.policy.enabled),
            "batch_multiplier": snapshot.policy.batch_multiplier,
            "automatic": self.automatic,
            "override": None
            if forced is None or snapshot.override is None
            else {
                "level": forced.level.label,
                "reason": forced.reason,
                "seconds_left": self._overrides.seconds_left(now),
            },
            "components": {
                name: {
                    "score": round(health.score, 2),
                    "state": health.state.label,
                    "predicted_recovery": health.predicted_recovery,
                    "opens": opens.get(name, 0),
                    "flapping": name in flapping,
                    "breakers": [
                        {
                            "name": status.name,
                            "state": status.state.value,
                            "retry_after": status.retry_after,
                        }
                        for status in health.breakers
                    ],
                }
                for name, health in snapshot.components.items()
            },
            "most_failing": most,
            "history": [change.as_dict() for change in self.history()],
        }


def _sdk_provider(provider: MeterProvider | None) -> SdkMeterProvider:
    if provider is None:
        provider = metrics.get_meter_provider()
    if isinstance(provider, SdkMeterProvider):
        return provider
    if provider is not metrics.get_meter_provider():
        raise TypeError(
            "meter_provider must be an opentelemetry.sdk.metrics.MeterProvider (the "
            "aggregator attaches an in-process reader to it), or None"
        )
    # No SDK configured globally: read our own breaker metrics on a private provider.
    return SdkMeterProvider()
