"""How routes say what they need: a tag on the endpoint, a router, or a mounted app.

Declaring never wraps anything; the middleware reads the tags once, when it builds its
route table at startup, and checks every feature name against the feature matrix there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_ATTRIBUTE = "__brownout_policy__"


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What a route needs.

    ``requires``: features it cannot work without (``None``: ``read`` for GET/HEAD/OPTIONS
    and websockets, ``write`` otherwise). ``optional``: features it can do without; the
    route is served degraded when they are off. ``components``: components it cannot work
    without; the route is rejected at once when all their breakers are open.
    """

    requires: frozenset[str] | None = None
    optional: frozenset[str] = frozenset()
    components: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        requires: Iterable[str] | None = None,
        optional: Iterable[str] = (),
        components: Iterable[str] = (),
    ) -> RoutePolicy:
        return cls(
            None if requires is None else _names("requires", requires),
            _names("optional", optional),
            _names("components", components),
        )

    def under(self, defaults: RoutePolicy) -> RoutePolicy:
        """This policy layered over ``defaults`` (a router's): sets are joined, and
        ``requires`` stays open (method default) only when neither says it."""
        if defaults.requires is None:
            requires = self.requires
        elif self.requires is None:
            requires = defaults.requires
        else:
            requires = defaults.requires | self.requires
        return RoutePolicy(
            requires, defaults.optional | self.optional, defaults.components | self.components
        )


EMPTY = RoutePolicy()


def _names(field: str, values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        raise TypeError(f"{field} must be a list of names, not the string {values!r}")
    names = frozenset(values)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{field} must hold non-empty strings, got {name!r}")
    return names


def features(
    *,
    requires: Iterable[str] | None = None,
    optional: Iterable[str] = (),
    components: Iterable[str] = (),
) -> Any:
    """Tag an endpoint (function or class) with what it needs; it is returned unchanged::

    @features(requires=["write"], optional=["ai"], components=["database"])
    async def create_item(request): ...
    """
    policy = RoutePolicy.of(requires, optional, components)

    def tag(endpoint: T) -> T:
        setattr(endpoint, _ATTRIBUTE, policy)
        return endpoint

    return tag


def router_defaults(
    router: T,
    *,
    requires: Iterable[str] | None = None,
    optional: Iterable[str] = (),
    components: Iterable[str] = (),
) -> T:
    """Defaults for every route under ``router`` (a Starlette ``Router``, a mounted app, or
    anything a ``Mount`` points at); routes' own declarations are layered over them."""
    setattr(router, _ATTRIBUTE, RoutePolicy.of(requires, optional, components))
    return router


def declared(obj: object) -> RoutePolicy | None:
    """The policy tagged on ``obj``, if any."""
    policy = getattr(obj, _ATTRIBUTE, None)
    return policy if isinstance(policy, RoutePolicy) else None
