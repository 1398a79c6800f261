"""Which rule applies to a request.

At startup the app's routes (Starlette routers, mounts, hosts, FastAPI included routers)
are flattened into one list of full path templates with their declared policies. A request
is matched against that list once per (method, path); the answer is cached in a bounded
dict, so a warm request costs one dict lookup whatever the number of routes.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import Host, Mount, WebSocketRoute, compile_path
from starlette.types import Scope

from brownout.middleware.decision import Rule, RuleFactory
from brownout.middleware.declare import EMPTY, RoutePolicy, declared
from brownout.settings import PathPolicy

HTTP, WEBSOCKET, ANY = "http", "websocket", "any"


@dataclass(frozen=True, slots=True)
class RouteEntry:
    template: str
    regex: re.Pattern[str]
    methods: frozenset[str] | None
    kind: str
    policy: RoutePolicy
    name: str


class PathPatterns:
    """Path-pattern policies from settings; first match wins."""

    def __init__(self, policies: Sequence[PathPolicy]) -> None:
        self.policies = [
            RoutePolicy.of(policy.requires, policy.optional, policy.components)
            for policy in policies
        ]
        self._compiled = [
            (
                re.compile(fnmatch.translate(policy.pattern)),
                None if policy.methods is None else frozenset(policy.methods),
                compiled,
            )
            for policy, compiled in zip(policies, self.policies, strict=True)
        ]

    def match(self, path: str, method: str) -> RoutePolicy | None:
        for regex, methods, policy in self._compiled:
            if (methods is None or method in methods) and regex.match(path):
                return policy
        return None


class RouteTable:
    def __init__(
        self,
        entries: Sequence[RouteEntry],
        patterns: PathPatterns,
        factory: RuleFactory,
        cache_size: int,
    ) -> None:
        self.entries = tuple(entries)
        self.patterns = patterns
        self.factory = factory
        self.cache: dict[tuple[str | None, str], Rule] = {}
        """(method, path below root_path) -> rule; bounded, cleared when full."""
        self._cache_size = cache_size
        self._validate()

    def _validate(self) -> None:
        for entry in self.entries:
            methods = entry.methods or (
                ("WEBSOCKET",) if entry.kind == WEBSOCKET else ("GET", "POST")
            )
            for method in methods:
                self._rule(
                    entry.policy,
                    entry.template,
                    method,
                    f"route {method} {entry.template} ({entry.name})",
                )
        for index, policy in enumerate(self.patterns.policies):
            for method in ("GET", "POST"):
                self.factory.rule(policy, method, f"settings paths[{index}]")

    def _rule(self, policy: RoutePolicy, template: str, method: str, where: str) -> Rule:
        pattern = self.patterns.match(template, method)
        if pattern is not None:
            policy = policy.under(pattern)
        return self.factory.rule(policy, method, where)

    def resolve(self, scope: Scope) -> Rule:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        method: str = scope.get("method", "WEBSOCKET")
        rule = self.cache.get((method, path))
        if rule is None:
            rule = self._match(scope["type"], method, path)
            if len(self.cache) >= self._cache_size:
                self.cache.clear()
            self.cache[(method, path)] = rule
        return rule

    def _match(self, kind: str, method: str, path: str) -> Rule:
        for entry in self.entries:
            if entry.kind not in (ANY, kind):
                continue
            if entry.methods is not None and method not in entry.methods:
                continue
            if entry.regex.match(path):
                return self._rule(entry.policy, entry.template, method, entry.name)
        return self._rule(EMPTY, path, method, "path pattern")


def build_table(
    app: object | None,
    factory: RuleFactory,
    path_policies: Sequence[PathPolicy],
    cache_size: int,
) -> RouteTable:
    """Flatten ``app``'s routes (if it has any) and check every declaration."""
    routes = getattr(app, "routes", None)
    defaults = _layer(EMPTY, app, getattr(app, "router", None))
    entries = list(_flatten(routes, "", defaults)) if routes else []
    return RouteTable(entries, PathPatterns(path_policies), factory, cache_size)


def _layer(policy: RoutePolicy, *tagged: object) -> RoutePolicy:
    for obj in tagged:
        own = declared(obj) if obj is not None else None
        if own is not None:
            policy = own.under(policy)
    return policy


def _expand(routes: Iterable[Any]) -> Iterator[Any]:
    """Recent FastAPI keeps included routers as nodes; list the routes they serve. (A
    FastAPI app's routes mean ``fastapi.routing`` is already imported.)"""
    iter_route_contexts = getattr(sys.modules.get("fastapi.routing"), "iter_route_contexts", None)
    if iter_route_contexts is None:
        yield from routes
        return
    yield from iter_route_contexts(list(routes))


def _flatten(routes: Iterable[Any], prefix: str, defaults: RoutePolicy) -> Iterator[RouteEntry]:
    for item in _expand(routes):
        route = getattr(item, "route", item)
        if isinstance(route, Mount):
            base = getattr(route, "_base_app", route.app)
            layered = _layer(defaults, route, base, getattr(base, "router", None))
            if route.routes:
                yield from _flatten(route.routes, prefix + route.path, layered)
            else:
                template = prefix + route.path + "/{path:path}"
                regex = compile_path(template)[0]
                yield RouteEntry(template, regex, None, ANY, layered, f"mount {template}")
            continue
        if isinstance(route, Host):
            yield from _flatten(route.routes, prefix, _layer(defaults, route, route.app))
            continue
        path = getattr(item, "path", None)
        if not isinstance(path, str):
            continue
        endpoint = getattr(item, "endpoint", None)
        template = prefix + path
        policy = _layer(defaults, *_dependency_tags(item), endpoint)
        methods = getattr(item, "methods", None)
        kind = WEBSOCKET if isinstance(route, WebSocketRoute) or _is_fastapi_ws(route) else HTTP
        name = getattr(endpoint, "__qualname__", None) or getattr(item, "name", None) or "?"
        yield RouteEntry(
            template,
            compile_path(template)[0],
            None if methods is None else frozenset(methods),
            kind,
            policy,
            str(name),
        )


def _dependency_tags(route: Any) -> list[object]:
    """FastAPI dependencies (router-level first, then the route's own) that declare a
    policy; see :func:`brownout.middleware.fastapi.features`."""
    dependant = getattr(route, "dependant", None)
    if dependant is not None:
        return [sub.call for sub in dependant.dependencies if declared(sub.call) is not None]
    return [
        dep.dependency
        for dep in getattr(route, "dependencies", ())
        if declared(getattr(dep, "dependency", None)) is not None
    ]


def _is_fastapi_ws(route: object) -> bool:
    websocket_route = getattr(sys.modules.get("fastapi.routing"), "APIWebSocketRoute", None)
    return websocket_route is not None and isinstance(route, websocket_route)
