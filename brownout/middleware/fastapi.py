"""FastAPI: declare features with a dependency, and document the 503 in OpenAPI.

``features(...)`` returns a ``Depends`` that declares the policy (read by the middleware
at startup, like the decorator) and hands the handler the decision::

    @app.post("/summaries", dependencies=[features(requires=["write"], optional=["ai"])])
    async def summarise(state: BrownoutState = features(optional=["ai"])): ...

    router = APIRouter(dependencies=[features(optional=["cache_read"])])  # router defaults
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import fastapi.routing as fastapi_routing
from fastapi import Depends, Request
from fastapi.routing import APIRoute

from brownout.levels import Level
from brownout.middleware.context import BrownoutState
from brownout.middleware.declare import RoutePolicy, declared
from brownout.middleware.declare import features as tag_features
from brownout.middleware.responses import PROBLEM_JSON

REJECTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {
        "description": (
            "Rejected by brownout: a feature this route requires is off at the current "
            "degradation level, or a dependency it requires is down."
        ),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 1},
            },
            "Brownout-Level": {
                "description": "The degradation level that rejected the request.",
                "schema": {"type": "string", "enum": [level.label for level in Level]},
            },
            "Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}},
        },
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail", "level", "feature"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer", "enum": [503]},
                        "detail": {"type": "string"},
                        "level": {"type": "string"},
                        "feature": {"type": "string"},
                        "component": {"type": "string"},
                    },
                }
            }
        },
    }
}
"""Pass as ``responses=`` to a route or router, or let :func:`document_rejections` add it."""


def features(
    *,
    requires: Iterable[str] | None = None,
    optional: Iterable[str] = (),
    components: Iterable[str] = (),
) -> Any:
    """A dependency declaring what the route needs; its value is the request's
    :class:`BrownoutState`."""

    async def brownout_state(request: Request) -> BrownoutState | None:
        state: BrownoutState | None = request.scope.get("brownout")
        return state

    tag_features(requires=requires, optional=optional, components=components)(brownout_state)
    return Depends(brownout_state)


def document_rejections(app: Any) -> int:
    """Add the 503 rejection to the OpenAPI responses of every route that can be shed
    (all but those that require only ``health``); returns how many routes changed. The
    middleware calls this at startup for FastAPI apps."""
    iter_route_contexts = getattr(fastapi_routing, "iter_route_contexts", None)
    contexts: Iterable[Any] = (
        app.routes if iter_route_contexts is None else iter_route_contexts(list(app.routes))
    )
    changed = 0
    for context in contexts:
        route = getattr(context, "original_route", context)
        if not isinstance(route, APIRoute) or not _sheddable(context):
            continue
        responses = context.responses
        if 503 not in responses and "503" not in responses:
            responses.update(REJECTION_RESPONSES)
            changed += 1
    if changed and hasattr(app, "openapi_schema"):
        app.openapi_schema = None
    return changed


def _sheddable(route: Any) -> bool:
    policies = [declared(route.endpoint)] + [
        declared(sub.call) for sub in route.dependant.dependencies
    ]
    requires: set[str] = set()
    for policy in policies:
        if isinstance(policy, RoutePolicy) and policy.requires is not None:
            requires |= policy.requires
    return requires != {"health"}
