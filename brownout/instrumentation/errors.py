"""Open-circuit errors that are also each client's own connection error."""

from __future__ import annotations

from brownout.breaker import CircuitOpenError


def native_open_error(native: type[Exception], name: str) -> type[CircuitOpenError]:
    """A ``CircuitOpenError`` subclass that is also ``native``, for clients whose
    connection error takes plain positional arguments (redis). Clients whose error needs
    other constructor arguments define their subclass by hand, keeping ``self.args`` as
    ``(breaker, component, retry_after)``."""
    return type(name, (CircuitOpenError, native), {"__module__": __name__})
