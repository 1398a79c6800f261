"""The error a guarded call raises when its breaker does not let it through."""

from __future__ import annotations


class CircuitOpenError(Exception):
    """The breaker is open: the call was not attempted.

    ``CircuitOpenError(breaker, component, retry_after)``. Client instrumentations raise
    subclasses that are *also* the client's own connection error (say
    ``redis.exceptions.ConnectionError``), so ``except`` blocks that already handle a dead
    dependency handle a tripped breaker the same way. The last real failure is chained as
    ``__cause__``.

    It is raised on every rejected call, so it is built from its ``args`` alone (no Python
    ``__init__``) and formats its message only when read. A subclass whose other base needs
    its own constructor arguments must leave ``self.args`` as ``(breaker, component,
    retry_after)``.
    """

    args: tuple[str, str, float | None]

    @property
    def breaker(self) -> str:
        """The breaker's name."""
        return self.args[0]

    @property
    def component(self) -> str:
        return self.args[1]

    @property
    def retry_after(self) -> float | None:
        """Seconds until the breaker lets a probe through; ``None`` when forced open."""
        return self.args[2]

    def __str__(self) -> str:
        breaker, component, retry_after = self.args
        if retry_after is None:
            when = "until an operator resets it"
        else:
            when = f"for another {retry_after:.1f}s"
        return f"circuit {breaker!r} ({component}) is open {when}"
