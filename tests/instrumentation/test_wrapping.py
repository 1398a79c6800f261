"""wrap_method: the replacement-method form of our wrappers, on classes, on instances, under
other wrapt proxies, and around attributes that are not plain methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wrapt

from brownout.instrumentation.wrapping import is_wrapped, unwrap, wrap_method


class Client:
    def __init__(self, name: str) -> None:
        self.name = name

    def execute(self, command: str, *, key: str = "") -> str:
        return f"{self.name}:{command}:{key}"


ORIGINAL = vars(Client)["execute"]


def recording(seen: list[tuple[Any, tuple[Any, ...]]]) -> Callable[[Any], Any]:
    def factory(original: Callable[..., Any]) -> Callable[..., Any]:
        def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append((self, args))
            return original(self, *args, **kwargs)

        return execute

    return factory


def test_on_a_class_every_instance_goes_through_the_replacement() -> None:
    seen: list[tuple[Any, tuple[Any, ...]]] = []
    wrap_method(Client, "execute", recording(seen))
    try:
        client = Client("a")
        assert client.execute("GET", key="k") == "a:GET:k"
        assert seen == [(client, ("GET",))]
        assert is_wrapped(Client, "execute")
        assert Client.execute.__name__ == "execute"
        wrap_method(Client, "execute", recording(seen))  # a second install is a no-op
        client.execute("SET")
        assert len(seen) == 2
    finally:
        unwrap(Client, "execute")
    assert vars(Client)["execute"] is ORIGINAL


def test_on_an_instance_only_that_instance_changes_and_unwrap_rebinds_the_original() -> None:
    seen: list[tuple[Any, tuple[Any, ...]]] = []
    client, other = Client("a"), Client("b")
    wrap_method(client, "execute", recording(seen))
    assert client.execute("GET") == "a:GET:"
    assert other.execute("GET") == "b:GET:"
    assert seen == [(client, ("GET",))]
    unwrap(client, "execute")
    assert not is_wrapped(client, "execute")
    assert client.execute("DEL") == "a:DEL:"
    assert len(seen) == 1


def test_beneath_a_wrapt_proxy_installed_first_either_side_can_leave() -> None:
    seen: list[tuple[Any, tuple[Any, ...]]] = []
    traced: list[str] = []

    def tracing(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        traced.append(args[0])
        return wrapped(*args, **kwargs)

    client = Client("a")
    wrapt.wrap_function_wrapper(client, "execute", tracing)
    wrap_method(client, "execute", recording(seen))
    assert client.execute("GET") == "a:GET:"
    assert traced == ["GET"]
    assert seen == [(client, ("GET",))]

    unwrap(client, "execute")  # ours goes, the tracing proxy stays and still works
    assert client.execute("SET") == "a:SET:"
    assert traced == ["GET", "SET"]
    assert len(seen) == 1


def test_an_attribute_that_is_not_a_plain_method_is_wrapped_the_slow_way() -> None:
    seen: list[tuple[Any, tuple[Any, ...]]] = []

    class Callable_:
        def __call__(self, command: str) -> str:
            return f"called:{command}"

    client = Client("a")
    client.execute = Callable_()  # type: ignore[method-assign,assignment]
    wrap_method(client, "execute", recording(seen))
    assert client.execute("GET") == "called:GET"
    assert seen == [(client, ("GET",))]
    unwrap(client, "execute")
    assert isinstance(vars(client)["execute"], Callable_)
