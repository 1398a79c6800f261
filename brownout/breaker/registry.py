"""Named breakers, one per dependency target, shared by everything in the process."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

from brownout.breaker.breaker import Breaker, Clock, RandomSource
from brownout.breaker.config import BreakerConfig
from brownout.breaker.errors import CircuitOpenError
from brownout.breaker.events import Listener, Transition, notify


class BreakerRegistry:
    """Get-or-create access to breakers by unique name.

    Listeners added here hear every breaker's transitions, including breakers created later;
    that is how the health aggregator wakes up on an outage.
    """

    def __init__(
        self,
        *,
        default_config: BreakerConfig | None = None,
        clock: Clock = time.monotonic,
        random_source: RandomSource = random.random,
    ) -> None:
        self.default_config = default_config if default_config is not None else BreakerConfig()
        self.clock = clock
        self._random = random_source
        self._breakers: dict[str, Breaker] = {}
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()

    def breaker(
        self,
        name: str,
        *,
        component: str = "external",
        config: BreakerConfig | None = None,
        open_error: type[CircuitOpenError] = CircuitOpenError,
    ) -> Breaker:
        """The breaker called ``name``, created on first use.

        Asking again with the same name returns the same breaker; asking with a different
        component or config is a programming error and raises ``ValueError``.
        """
        existing = self._breakers.get(name)
        if existing is None:
            with self._lock:
                existing = self._breakers.get(name)
                if existing is None:
                    created = Breaker(
                        name,
                        config if config is not None else self.default_config,
                        component=component,
                        clock=self.clock,
                        random_source=self._random,
                        open_error=open_error,
                    )
                    created.add_listener(self._relay)
                    self._breakers[name] = created
                    return created
        if existing.component != component:
            raise ValueError(
                f"breaker {name!r} already exists for component {existing.component!r}, "
                f"not {component!r}; use another name or the same component"
            )
        if config is not None and config != existing.config:
            raise ValueError(
                f"breaker {name!r} already exists with a different config; "
                "configure it once, or use another name"
            )
        return existing

    def get(self, name: str) -> Breaker:
        try:
            return self._breakers[name]
        except KeyError:
            known = ", ".join(sorted(self._breakers)) or "none yet"
            raise KeyError(f"no breaker named {name!r}; known breakers: {known}") from None

    def remove(self, name: str) -> None:
        with self._lock:
            breaker = self._breakers.pop(name, None)
        if breaker is not None:
            breaker.remove_listener(self._relay)

    def __iter__(self) -> Iterator[Breaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item != listener)

    def _relay(self, event: Transition) -> None:
        notify(self._listeners, event)


breakers = BreakerRegistry()
"""The process-wide registry that instrumentations and ``brownout.breaker()`` use."""
