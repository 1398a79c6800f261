"""ASGI middleware: routes served, degraded or rejected by level; probes and admin API."""

from brownout.middleware.asgi import BrownoutMiddleware
from brownout.middleware.context import BrownoutState, enabled
from brownout.middleware.control import HealthControl
from brownout.middleware.decision import RoutePolicyError
from brownout.middleware.declare import RoutePolicy, features, router_defaults
from brownout.middleware.responses import Rejection, RejectionBuilder, problem_response
from brownout.settings import MiddlewareSettings, PathPolicy

__all__ = [
    "BrownoutMiddleware",
    "BrownoutState",
    "HealthControl",
    "MiddlewareSettings",
    "PathPolicy",
    "Rejection",
    "RejectionBuilder",
    "RoutePolicy",
    "RoutePolicyError",
    "enabled",
    "features",
    "problem_response",
    "router_defaults",
]
