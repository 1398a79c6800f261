"""Settings: one pydantic model tree, loadable from code, ``BROWNOUT_...`` environment
variables (nested with ``__``) and a TOML file.

Precedence, highest first: values passed in code, environment, TOML file, defaults::

    settings = BrownoutSettings.load("brownout.toml", health={"dwell_seconds": 10})

    BROWNOUT_HEALTH__DWELL_SECONDS=10
    BROWNOUT_HEALTH__WEIGHTS__DATABASE=0.5

Maps keyed by component (``weights``, ``slas``) merge over the defaults, so one environment
variable changes one weight. Invalid values raise :class:`SettingsError` naming the field
path and the fix. Each area of brownout owns one sub-model of :class:`BrownoutSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from brownout.features import BUILTIN_FEATURES, DEFAULT_MATRIX, FeatureMatrix
from brownout.levels import Level

BUILTIN_COMPONENTS: tuple[str, ...] = ("database", "cache", "openai", "s3", "external")

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "database": 0.40,
    "cache": 0.20,
    "openai": 0.20,
    "s3": 0.10,
    "external": 0.10,
}

DEFAULT_SLAS: Mapping[str, Mapping[str, float]] = {
    "database": {"latency_warn_seconds": 0.1, "latency_critical_seconds": 0.5},
    "cache": {"latency_warn_seconds": 0.01, "latency_critical_seconds": 0.05},
    "openai": {"latency_warn_seconds": 5.0, "latency_critical_seconds": 20.0},
    "s3": {"latency_warn_seconds": 0.5, "latency_critical_seconds": 2.0},
    "external": {"latency_warn_seconds": 1.0, "latency_critical_seconds": 5.0},
}

_STATE_NAMES = ("healthy", "degraded", "failing", "critical")

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Percent = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]
Score = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
LevelName = Annotated[
    Level, BeforeValidator(Level.parse), PlainSerializer(lambda level: level.label)
]


class SettingsError(ValueError):
    """Settings that cannot work; the message names each field path and its fix."""


def _strict() -> ConfigDict:
    return ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class ComponentSLA(BaseModel):
    """What "good enough" means for one component; penalties start at ``warn`` and are
    severe past ``critical``."""

    model_config = _strict()

    latency_warn_seconds: Seconds = 1.0
    latency_critical_seconds: Seconds = 5.0
    error_rate_warn: Percent = 5.0
    error_rate_critical: Percent = 25.0

    @model_validator(mode="after")
    def _ordered(self) -> ComponentSLA:
        if self.latency_critical_seconds <= self.latency_warn_seconds:
            raise ValueError(
                f"latency_critical_seconds ({self.latency_critical_seconds}) must be above "
                f"latency_warn_seconds ({self.latency_warn_seconds}); raise the critical one"
            )
        if self.error_rate_critical <= self.error_rate_warn:
            raise ValueError(
                f"error_rate_critical ({self.error_rate_critical}) must be above "
                f"error_rate_warn ({self.error_rate_warn}); raise the critical one"
            )
        return self


class LevelThresholds(BaseModel):
    """The lowest overall score of each level; below ``minimal`` is EMERGENCY."""

    model_config = _strict()

    optimal: Score = 90.0
    """Lowest overall score that is OPTIMAL."""
    degraded: Score = 70.0
    """Lowest overall score that is DEGRADED."""
    limited: Score = 50.0
    """Lowest overall score that is LIMITED."""
    minimal: Score = 25.0
    """Lowest overall score that is MINIMAL; below it, EMERGENCY."""

    @model_validator(mode="after")
    def _ordered(self) -> LevelThresholds:
        _check_descending(
            ("optimal", self.optimal),
            ("degraded", self.degraded),
            ("limited", self.limited),
            ("minimal", self.minimal),
        )
        return self

    def as_tuple(self) -> tuple[float, ...]:
        """Thresholds indexed by level, best first (OPTIMAL .. MINIMAL)."""
        return (self.optimal, self.degraded, self.limited, self.minimal)


class StateThresholds(BaseModel):
    """The lowest component score of each component state; below ``failing`` is CRITICAL."""

    model_config = _strict()

    healthy: Score = 80.0
    """Lowest component score that is HEALTHY."""
    degraded: Score = 50.0
    """Lowest component score that is DEGRADED."""
    failing: Score = 20.0
    """Lowest component score that is FAILING; below it, CRITICAL."""

    @model_validator(mode="after")
    def _ordered(self) -> StateThresholds:
        _check_descending(
            ("healthy", self.healthy), ("degraded", self.degraded), ("failing", self.failing)
        )
        return self

    def as_tuple(self) -> tuple[float, ...]:
        return (self.healthy, self.degraded, self.failing)


def _check_descending(*pairs: tuple[str, float]) -> None:
    for (upper, high), (lower, low) in pairwise(pairs):
        if not high > low:
            raise ValueError(
                f"thresholds out of order: {upper} ({high}) must be above {lower} ({low}); "
                "give each better level a higher threshold"
            )


class CascadeSettings(BaseModel):
    model_config = _strict()

    impact: dict[str, dict[str, Fraction]] = Field(
        default_factory=lambda: {"database": {"cache": 0.25}}
    )
    """source -> target -> share of the source's lost health the target loses too (a
    database outage makes cache misses fall through). Replaces the default when given."""
    simultaneous_window_seconds: Seconds = 60.0
    """Window for counting components that went down together."""
    simultaneous_components: Annotated[int, Field(ge=2)] = 3
    """This many components going down within the window is treated as a wider incident."""
    simultaneous_floor: LevelName = Level.MINIMAL
    """The best level allowed during such an incident (3 = MINIMAL)."""
    flap_window_seconds: Seconds = 300.0
    """Window for counting re-opens of one component."""
    flap_opens: Annotated[int, Field(ge=2)] = 3
    """A component whose breakers opened this many times within the window is flapping."""
    flap_dwell_multiplier: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 2.0
    """The recovery dwell is multiplied by this while a component flaps."""
    max_dwell_seconds: Seconds = 600.0
    """Upper bound of the lengthened dwell."""


class ProbeKinds(BaseModel):
    """The built-in probe factories; turning one off ignores probes of that kind."""

    model_config = _strict()

    redis: bool = True
    """Run redis PING probes."""
    sqlalchemy: bool = True
    """Run SQLAlchemy SELECT 1 probes."""
    s3: bool = True
    """Run S3 HeadBucket probes."""
    openai: bool = True
    """Run OpenAI models.list probes."""
    custom: bool = True
    """Run probes you registered yourself."""


class ProbeSettings(BaseModel):
    model_config = _strict()

    enabled: bool = True
    """Run active probes for components whose breakers are open."""
    initial_backoff_seconds: Seconds = 10.0
    """Delay before the first probe of a down component."""
    max_backoff_seconds: Seconds = 300.0
    """Longest delay between probes."""
    backoff_multiplier: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 2.0
    """Each failed probe multiplies the delay by this."""
    jitter: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.1
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""
    timeout_seconds: Seconds = 5.0
    """A probe that takes longer has failed."""
    half_open_on_success: bool = True
    """A probe that answers ends the open period of the component's open breakers, so the
    next real calls probe (see RecoveryLoop)."""
    kinds: ProbeKinds = Field(default_factory=ProbeKinds)

    @model_validator(mode="after")
    def _ordered(self) -> ProbeSettings:
        if self.max_backoff_seconds < self.initial_backoff_seconds:
            raise ValueError(
                f"max_backoff_seconds ({self.max_backoff_seconds}) must be >= "
                f"initial_backoff_seconds ({self.initial_backoff_seconds}); raise it"
            )
        return self


class MetricRuleSettings(BaseModel):
    """Score ``component`` from an OpenTelemetry instrument the user names."""

    model_config = _strict()

    component: str
    instrument: str = Field(min_length=1)
    """A histogram (latency and error rate) or a counter (error rate only)."""
    error_attribute: str = "error.type"
    """A point carrying this attribute counts as errors."""
    error_values: tuple[str, ...] = ()
    """When given, only these values of ``error_attribute`` count as errors."""
    attributes: dict[str, str] = Field(default_factory=dict)
    """Only points carrying all of these attributes count."""
    unit_seconds: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    """Seconds per unit of the histogram (0.001 for a millisecond histogram)."""
    latency: bool = True
    errors: bool = True


class FeatureMatrixSettings(BaseModel):
    """Level -> features on, and the batch multiplier per level."""

    model_config = _strict()

    enabled: dict[LevelName, list[str]]
    batch: dict[LevelName, Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]]
    features: tuple[str, ...] = ()
    """Custom features beyond the built-in ones."""

    @model_validator(mode="after")
    def _buildable(self) -> FeatureMatrixSettings:
        self.build()
        return self

    def build(self) -> FeatureMatrix:
        return FeatureMatrix(self.enabled, self.batch, (*BUILTIN_FEATURES, *self.features))


def _merge_defaults(
    defaults: Mapping[str, Any], value: object, nested: bool = False
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return value  # type: ignore[return-value]  # pydantic reports the wrong type
    merged: dict[str, Any] = {key: dict(item) if nested else item for key, item in defaults.items()}
    for key, item in value.items():
        base = merged.get(key)
        if nested and isinstance(base, dict) and isinstance(item, Mapping):
            merged[key] = {**base, **item}
        else:
            merged[key] = item
    return merged


class HealthSettings(BaseModel):
    """How the health aggregator scores components and picks the level."""

    model_config = _strict()

    automatic: bool = True
    """The master switch: off pins the level at OPTIMAL (breakers still protect calls)."""
    components: tuple[str, ...] = ()
    """Custom components beyond database, cache, openai, s3 and external."""
    weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS)
    )
    """Share of the overall score per component, renormalised over the components the
    service has. Merged over the defaults."""
    slas: dict[str, ComponentSLA] = Field(
        default_factory=lambda: {name: ComponentSLA(**sla) for name, sla in DEFAULT_SLAS.items()}
    )
    """Per component: latency (warn/critical, seconds) and error-rate (warn/critical, %)
    thresholds. Merged over the defaults."""
    thresholds: LevelThresholds = Field(default_factory=LevelThresholds)
    states: StateThresholds = Field(default_factory=StateThresholds)
    margin: Annotated[float, Field(ge=0, lt=100, allow_inf_nan=False)] = 5.0
    """Points above a better level's threshold the score must hold before climbing."""
    dwell_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0
    """How long the score must hold above a better level (plus the margin) before the level
    climbs one step."""
    smoothing_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 5.0
    """Time constant of the moving average over error rate and latency (0: none)."""
    latency_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.95
    """The latency quantile compared against the SLA thresholds."""
    heartbeat_seconds: Seconds = 1.0
    """How often the recovery loop collects metrics and evaluates."""
    history_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Level changes kept for the admin API."""
    floors: dict[str, dict[str, LevelName]] = Field(
        default_factory=lambda: {"database": {"critical": Level.LIMITED}}
    )
    """component -> state -> the best level allowed while the component is in that state
    or worse. Replaces the default when given."""
    cascade: CascadeSettings = Field(default_factory=CascadeSettings)
    probes: ProbeSettings = Field(default_factory=ProbeSettings)
    metrics: tuple[MetricRuleSettings, ...] = ()
    """Extra OpenTelemetry instruments that score a component (latency and error-rate rules)."""
    features: FeatureMatrixSettings | None = None
    """The feature matrix; DESIGN.md's default when not given."""

    @property
    def known_components(self) -> tuple[str, ...]:
        return (*BUILTIN_COMPONENTS, *self.components)

    @field_validator("components")
    @classmethod
    def _new_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name or name in BUILTIN_COMPONENTS:
                raise ValueError(f"{name!r} is built in or empty; list only custom component names")
        return value

    @field_validator("weights", mode="before")
    @classmethod
    def _merge_weights(cls, value: object) -> object:
        return _merge_defaults(DEFAULT_WEIGHTS, value)

    @field_validator("slas", mode="before")
    @classmethod
    def _merge_slas(cls, value: object) -> object:
        return _merge_defaults(DEFAULT_SLAS, value, nested=True)

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        _check_names(value, info)
        if not sum(value.values()) > 0:
            raise ValueError(
                "weights must sum to a positive number; give at least one component a "
                "weight above 0"
            )
        return value

    @field_validator("slas")
    @classmethod
    def _check_slas(
        cls, value: dict[str, ComponentSLA], info: ValidationInfo
    ) -> dict[str, ComponentSLA]:
        _check_names(value, info)
        return value

    @field_validator("floors")
    @classmethod
    def _check_floors(
        cls, value: dict[str, dict[str, Level]], info: ValidationInfo
    ) -> dict[str, dict[str, Level]]:
        _check_names(value, info)
        for component, rules in value.items():
            for state in rules:
                if state not in _STATE_NAMES:
                    raise ValueError(
                        f"{component}: unknown component state {state!r}; use one of: "
                        f"{', '.join(_STATE_NAMES)}"
                    )
        return value

    @model_validator(mode="after")
    def _check_references(self) -> HealthSettings:
        known = set(self.known_components)
        for source, targets in self.cascade.impact.items():
            for name in (source, *targets):
                if name not in known:
                    raise ValueError(
                        f"cascade.impact: unknown component {name!r}; use one of "
                        f"{sorted(known)} or add it to health.components"
                    )
        for index, rule in enumerate(self.metrics):
            if rule.component not in known:
                raise ValueError(
                    f"metrics[{index}].component: unknown component {rule.component!r}; use "
                    f"one of {sorted(known)} or add it to health.components"
                )
        return self

    def sla(self, component: str) -> ComponentSLA:
        sla = self.slas.get(component)
        return sla if sla is not None else self.slas["external"]

    def feature_matrix(self) -> FeatureMatrix:
        return DEFAULT_MATRIX if self.features is None else self.features.build()


def _check_names(value: Mapping[str, object], info: ValidationInfo) -> None:
    known = (*BUILTIN_COMPONENTS, *info.data.get("components", ()))
    for name in value:
        if name not in known:
            raise ValueError(
                f"unknown component {name!r}; use one of {list(known)} "
                "or add it to health.components"
            )


_toml_file: ContextVar[Path | None] = ContextVar("brownout_settings_toml", default=None)


# -- middleware -------------------------------------------------------------------------


class PathPolicy(BaseModel):
    """Features for routes of an app you cannot edit, matched by a glob on the path.

    ``pattern`` is an ``fnmatch`` glob (``/reports/*``); for Starlette and FastAPI apps it is
    matched against route templates (``/items/{item_id}``), otherwise against request paths.
    """

    model_config = _strict()

    pattern: str
    methods: tuple[str, ...] | None = None
    """Methods this policy applies to (any when omitted)."""
    requires: tuple[str, ...] | None = None
    """Features the route cannot work without; omitted: ``read`` for safe methods, else
    ``write``."""
    optional: tuple[str, ...] = ()
    components: tuple[str, ...] = ()

    @field_validator("pattern")
    @classmethod
    def _starts_with_slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"path pattern must start with '/', got {value!r}")
        return value

    @field_validator("methods")
    @classmethod
    def _upper(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(method.upper() for method in value)


_FEATURE_COMPONENTS: dict[str, tuple[str, ...]] = {"write": ("database",)}


class MiddlewareSettings(BaseModel):
    """Everything :class:`~brownout.middleware.BrownoutMiddleware` can be told."""

    model_config = _strict()

    prefix: str = ""
    """Prepended to every brownout endpoint path (``/ops`` gives ``/ops/livez``)."""
    livez_path: str = "/livez"
    """Liveness: 200 whenever the process serves."""
    readyz_path: str = "/readyz"
    """Readiness: 503 before startup completes and during shutdown."""
    health_path: str = "/health"
    """application/health+json: pass, warn or fail (503) by level."""
    metrics_path: str | None = None
    """Serve Prometheus text here (needs ``prometheus_client``); off when ``None``."""
    admin_path: str = "/brownout/admin"
    """Root of the admin API (status, force level, force breaker, clear overrides)."""

    admin_api_key: SecretStr | None = None
    """The admin API and health details are off unless a key is set."""
    admin_rate: float = Field(default=1.0, gt=0)
    """Admin requests per second per client, refilled continuously."""
    admin_burst: int = Field(default=10, ge=1)
    """Admin requests a client may make at once before the rate applies."""

    batch_limit: int = Field(default=16, ge=1)
    """Concurrent batch requests at OPTIMAL; scaled by the level's batch multiplier."""
    unready_at_emergency: bool = False
    """Answer /readyz with 503 at EMERGENCY (off: an unready fleet refuses everyone)."""
    retry_jitter: float = Field(default=0.2, ge=0, le=1)
    """``Retry-After`` is stretched by up to this fraction, at random, to spread retries."""

    paths: tuple[PathPolicy, ...] = ()
    """Path-pattern policies, first match wins; below route and router declarations."""
    feature_components: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(_FEATURE_COMPONENTS)
    )
    """Components implied by a required feature: by default a route that requires
    ``write`` is rejected at once when every ``database`` breaker is open."""
    route_cache_size: int = Field(default=4096, ge=16)
    """Resolved (method, path) pairs kept; further distinct paths are matched each time."""

    @field_validator("admin_api_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("admin_api_key must be at least 16 characters")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value and (not value.startswith("/") or value.endswith("/")):
            raise ValueError(f"prefix must start with '/' and not end with '/', got {value!r}")
        return value

    @model_validator(mode="after")
    def _paths(self) -> MiddlewareSettings:
        named = {
            "livez_path": self.livez_path,
            "readyz_path": self.readyz_path,
            "health_path": self.health_path,
            "metrics_path": self.metrics_path,
            "admin_path": self.admin_path,
        }
        for name, path in named.items():
            if path is not None and (not path.startswith("/") or path.endswith("/")):
                raise ValueError(f"{name} must start with '/' and not end with '/', got {path!r}")
        return self

    def path(self, name: str) -> str:
        """The full path of endpoint ``name`` (``"livez"``, ``"admin"``...)."""
        value: str = getattr(self, f"{name}_path")
        return self.prefix + value


class BrownoutSettings(BaseSettings):
    """Every brownout setting. Each area owns one sub-model; adding one is one line."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="BROWNOUT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    health: HealthSettings = Field(default_factory=HealthSettings)
    middleware: MiddlewareSettings = Field(default_factory=MiddlewareSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _toml_file.get()
        if toml_file is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))

    @classmethod
    def load(cls, toml_file: str | Path | None = None, **values: Any) -> BrownoutSettings:
        """Build settings from ``values``, the environment and ``toml_file``; raise
        :class:`SettingsError` listing every invalid field path and its fix."""
        path = None if toml_file is None else Path(toml_file)
        if path is not None and not path.is_file():
            raise SettingsError(f"settings file {str(path)!r} does not exist; fix the path")
        token = _toml_file.set(path)
        try:
            return cls(**values)
        except ValidationError as error:
            raise SettingsError(describe(error, source=path)) from None
        except ValueError as error:  # a TOML syntax error or an unparsable env value
            raise SettingsError(f"brownout settings: {error}") from None
        finally:
            _toml_file.reset(token)


def describe(error: ValidationError, source: Path | None = None) -> str:
    """One line per problem: ``field.path: what is wrong and how to fix it``."""
    origin = f" (from code, BROWNOUT_* environment or {source})" if source else ""
    lines = [f"invalid brownout settings{origin}:"]
    for problem in error.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in problem["loc"]) or "settings"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)
