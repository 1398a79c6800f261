"""The decision for a route at a level: serve, serve degraded, or reject.

A :class:`Rule` is what one route needs for one kind of method, checked against the
matrix at startup. Its verdict depends only on the level's policy, so it is computed once
per level change and shared by every request; per request only the components' breakers
(which change between snapshots) are looked at, and only for routes that name components.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from brownout.features import READ, WRITE, FeatureMatrix, LevelPolicy
from brownout.health.snapshot import ComponentHealth, Snapshot
from brownout.levels import Level
from brownout.middleware.context import BrownoutState
from brownout.middleware.declare import RoutePolicy

SERVED = "served"
DEGRADED = "degraded"
REJECTED = "rejected"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "WEBSOCKET"})
"""Methods whose undeclared routes require ``read`` (websocket handshakes count as reads)."""


class RoutePolicyError(ValueError):
    """A route declaration names something the matrix does not know."""


@dataclass(frozen=True, slots=True)
class Verdict:
    state: BrownoutState
    missing: str | None
    """The first required feature that is off: the request is rejected."""
    degraded_header: bytes | None
    decision: str
    metric_key: tuple[str, str, str]
    """(feature, decision, level) for ``brownout.http.requests``."""


class Rule:
    """What a route needs, resolved for a method: required features in a fixed order (so the
    rejection names the same one every time), optional features and components."""

    __slots__ = (
        "_cached",
        "batch",
        "components",
        "feature",
        "known",
        "last",
        "optional",
        "requires",
    )

    def __init__(
        self,
        requires: tuple[str, ...],
        optional: frozenset[str],
        components: tuple[str, ...],
        known: frozenset[str],
    ) -> None:
        self.requires = requires
        self.optional = optional
        self.components = components
        self.known = known
        self.batch = "batch" in requires
        self.feature = requires[0] if requires else "none"
        self._cached: tuple[LevelPolicy | None, Level | None, Verdict | None] = (None, None, None)
        self.last: tuple[Snapshot | None, Verdict | None] = (None, None)
        """The last snapshot judged and its verdict, in one attribute so a reader on
        another thread never pairs one snapshot with another's verdict."""

    def verdict(self, snapshot: Snapshot) -> Verdict:
        policy, level = snapshot.policy, snapshot.level
        cached_policy, cached_level, verdict = self._cached
        if cached_policy is policy and cached_level is level and verdict is not None:
            self.last = (snapshot, verdict)
            return verdict
        verdict = self._judge(policy, level)
        self._cached = (policy, level, verdict)
        self.last = (snapshot, verdict)
        return verdict

    def _judge(self, policy: LevelPolicy, level: Level) -> Verdict:
        enabled = policy.enabled
        off = self.known - enabled
        missing = next((feature for feature in self.requires if feature not in enabled), None)
        degraded = tuple(sorted(self.optional - enabled))
        state = BrownoutState(level, frozenset(off), degraded, policy.batch_multiplier)
        if missing is not None:
            return Verdict(state, missing, None, REJECTED, (missing, REJECTED, level.label))
        if degraded:
            header = ",".join(degraded).encode("ascii")
            return Verdict(state, None, header, DEGRADED, (self.feature, DEGRADED, level.label))
        return Verdict(state, None, None, SERVED, (self.feature, SERVED, level.label))

    def metric_keys(self, matrix: FeatureMatrix) -> set[tuple[str, str, str]]:
        """Every (feature, decision, level) this rule counts under ``matrix``'s levels: what
        each level decides, plus a rejection at every level when a down dependency or the
        batch limit can reject it."""
        keys = set()
        for level in Level:
            keys.add(self._judge(matrix.policy(level), level).metric_key)
            if self.components or self.batch:
                keys.add((self.feature, REJECTED, level.label))
        return keys

    def down_component(self, components: Mapping[str, ComponentHealth]) -> ComponentHealth | None:
        """The first required component whose breakers are all open, if any."""
        for name in self.components:
            health = components.get(name)
            if health is not None and health.all_open:
                return health
        return None

    def __repr__(self) -> str:
        return (
            f"Rule(requires={list(self.requires)}, optional={sorted(self.optional)}, "
            f"components={list(self.components)})"
        )


class RuleFactory:
    """Turns route policies into rules, checking every name once, sharing equal rules."""

    def __init__(
        self,
        matrix: FeatureMatrix,
        feature_components: Mapping[str, tuple[str, ...]],
        on_new_rule: Callable[[Rule], None] | None = None,
    ) -> None:
        self.matrix = matrix
        self.feature_components = feature_components
        self.on_new_rule = on_new_rule
        for feature in feature_components:
            self._check(feature, "feature_components setting")
        self._rules: dict[tuple[RoutePolicy, bool], Rule] = {}

    def rule(self, policy: RoutePolicy, method: str, where: str = "") -> Rule:
        safe = method in SAFE_METHODS
        key = (policy, safe if policy.requires is None else True)
        rule = self._rules.get(key)
        if rule is not None:
            return rule
        for field, names in (("requires", policy.requires or ()), ("optional", policy.optional)):
            for feature in names:
                self._check(feature, f"{where} {field}".strip())
        if policy.requires is None:
            requires: tuple[str, ...] = (READ,) if safe else (WRITE,)
        else:
            requires = tuple(sorted(policy.requires))
        components = set(policy.components)
        for feature in requires:
            components.update(self.feature_components.get(feature, ()))
        rule = Rule(
            requires,
            policy.optional - set(requires),
            tuple(sorted(components)),
            self.matrix.features,
        )
        self._rules[key] = rule
        if self.on_new_rule is not None:
            self.on_new_rule(rule)
        return rule

    def _check(self, feature: str, where: str) -> None:
        if feature not in self.matrix.features:
            raise RoutePolicyError(
                f"{where}: unknown feature {feature!r}; known features: "
                f"{sorted(self.matrix.features)} (add custom features to the FeatureMatrix)"
            )
