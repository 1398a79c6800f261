"""Installing and removing our wrappers so they coexist with other instrumentations.

OpenTelemetry's ``unwrap`` removes the *outermost* wrapt proxy of an attribute. If our
breaker wrapper sat on top of, say, the official redis tracing wrapper, uninstrumenting
tracing would remove *ours*. So our wrapper always goes innermost, directly around the
original function, and removing it splices it out of wherever it sits in the chain:
either side can uninstrument in either order and only its own wrapper goes.

Wrappers take wrapt's arguments ``(wrapped, instance, args, kwargs)``. Around a plain
function (a method on a class, or a module function) the wrapper is installed as a plain
function, not a wrapt proxy: wrapt builds a bound proxy on every attribute access, which
costs ~0.6 µs per call on a small machine, a large share of a local redis round trip.
Anything else (instance attributes, descriptors) gets a wrapt ``FunctionWrapper``.

The hottest paths (a redis command; a SQLAlchemy checkout and statement) go one step
further with ``wrap_method``: the instrumentation builds the replacing function itself
around the original, so a call pays no adapter frame and no bound method, and a method
bound on an instance (a dialect's ``do_execute``) gets a bound function, not a wrapt proxy.
Around a real local redis round trip each of those costs ~0.2 µs, several times its cost in
a tight loop.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any

import wrapt

# wrapt 2 moved function wrappers under BaseObjectProxy; wrapt 1 only has ObjectProxy.
_Proxy: Any = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
_MARK = "__brownout_guard__"

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
MethodFactory = Callable[[Callable[..., Any]], Callable[..., Any]]
"""Given a method's original function, the function to call instead: it takes ``self``
first, like the original, and calls ``original(self, ...)`` itself."""


class BreakerWrapper(wrapt.FunctionWrapper[Any, Any]):
    """Marks a wrapt wrapper as brownout's, so we can find it in a chain of proxies."""


def _is_ours(node: object) -> bool:
    if not isinstance(node, _Proxy):  # a proxy forwards attribute reads to what it wraps
        return getattr(node, _MARK, False) is True
    # OpenTelemetry's unwrap reads class attributes through the descriptor protocol, which
    # can leave a *bound* wrapper in the class; it still points at ours as its parent.
    return isinstance(node, BreakerWrapper) or isinstance(
        getattr(node, "_self_parent", None), BreakerWrapper
    )


def _raw(owner: object, attribute: str) -> Any:
    # Read a class attribute without triggering the descriptor protocol.
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if attribute in vars(klass):
                return vars(klass)[attribute]
    return getattr(owner, attribute)


def _plain(original: types.FunctionType, wrapper: Wrapper, method: bool) -> Any:
    bind = types.MethodType
    guarded: Any
    if method and inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await wrapper(bind(original, self), self, args, kwargs)

    elif method:

        @functools.wraps(original)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            return wrapper(bind(original, self), self, args, kwargs)

    elif inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            return await wrapper(original, None, args, kwargs)

    else:

        @functools.wraps(original)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return wrapper(original, None, args, kwargs)

    setattr(guarded, _MARK, True)
    return guarded


def wrap(owner: object, attribute: str, wrapper: Wrapper) -> None:
    """Wrap ``owner.attribute`` with ``wrapper`` beneath any existing wrapt proxies."""

    def build(node: Any) -> Any:
        if isinstance(node, types.FunctionType) and isinstance(owner, (type, types.ModuleType)):
            return _plain(node, wrapper, method=isinstance(owner, type))
        return BreakerWrapper(node, wrapper)

    _install(owner, attribute, build)


def wrap_method(owner: object, attribute: str, factory: MethodFactory) -> None:
    """Replace the method ``owner.attribute`` (on a class, or bound on an instance) with
    ``factory(original)``, beneath any existing wrapt proxies."""

    def build(node: Any) -> Any:
        if isinstance(node, types.FunctionType) and isinstance(owner, type):
            return _marked(node, factory)
        if isinstance(node, types.MethodType) and isinstance(node.__func__, types.FunctionType):
            return types.MethodType(_marked(node.__func__, factory), node.__self__)
        return BreakerWrapper(node, _adapter(factory, owner))  # not a plain method: the slow way

    _install(owner, attribute, build)


def _marked(original: types.FunctionType, factory: MethodFactory) -> Any:
    replacement = functools.wraps(original)(factory(original))
    setattr(replacement, _MARK, True)
    return replacement


def _adapter(factory: MethodFactory, owner: object) -> Wrapper:
    # An instance attribute that is not a bound method is called unbound: its owner is
    # the instance the replacement must see.
    default = None if isinstance(owner, type) else owner

    def adapt(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        replacement = factory(lambda _self, *args, **kwargs: wrapped(*args, **kwargs))
        return replacement(default if instance is None else instance, *args, **kwargs)

    return adapt


def _install(owner: object, attribute: str, build: Callable[[Any], Any]) -> None:
    parent: Any = None
    node = _raw(owner, attribute)
    while isinstance(node, _Proxy):
        if _is_ours(node):
            return
        parent, node = node, node.__wrapped__
    if _is_ours(node):
        return  # already ours somewhere in the chain
    ours = build(node)
    if parent is None:
        setattr(owner, attribute, ours)
    else:
        parent.__wrapped__ = ours


def unwrap(owner: object, attribute: str) -> None:
    """Remove our wrapper from ``owner.attribute``, leaving every other wrapper in place."""
    parent: Any = None
    node = _raw(owner, attribute)
    while True:
        if _is_ours(node):
            inner = node.__wrapped__
            if isinstance(node, types.MethodType):  # a bound replacement: rebind the original
                inner = types.MethodType(inner, node.__self__)
            if parent is None:
                setattr(owner, attribute, inner)
            else:
                parent.__wrapped__ = inner
            return
        if not isinstance(node, _Proxy):
            return
        parent, node = node, node.__wrapped__


def is_wrapped(owner: object, attribute: str) -> bool:
    node = _raw(owner, attribute)
    while True:
        if _is_ours(node):
            return True
        if not isinstance(node, _Proxy):
            return False
        node = node.__wrapped__
