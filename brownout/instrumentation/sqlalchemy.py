"""Circuit breakers around SQLAlchemy engines (sync and asyncio).

One breaker per database: the engine URL with its backend name, host, port and database
only (``postgresql://db.internal:5432/shop``): no driver, user name, password or query.
Component ``database`` unless told otherwise.

Two hooks per engine:

- **Checkout** (``Engine.raw_connection``, which every ``Engine.connect()``, ``Session``
  and async connection goes through): an open breaker rejects here, *before* the pool is
  touched, so a dead database never makes requests queue for pool connections. Failed
  checkouts (connection refused, connect timeout, pool timeout) are failures; a slow
  successful checkout is a slow call; other successful checkouts are not counted, the
  statements that follow are.
- **Statements** (the dialect's ``do_execute`` / ``do_executemany`` /
  ``do_execute_no_params``, the DBAPI calls themselves): each statement is one call,
  labelled by its verb (``SELECT``, ``INSERT``...; never SQL text). Wrapping the engine's
  dialect instance rather than listening to ``before/after_cursor_execute`` events times
  exactly the DBAPI call and sees its error before SQLAlchemy wraps it.

OperationalError, InterfaceError, DisconnectionError and the pool's TimeoutError (and the
DBAPI's own OperationalError / InterfaceError) are failures; IntegrityError,
ProgrammingError and DataError are ignored. An open breaker raises
:class:`SQLAlchemyCircuitOpenError`, an ``sqlalchemy.exc.OperationalError``.
"""

from __future__ import annotations

import dataclasses
import importlib
import weakref
from collections.abc import Callable, Collection
from typing import Any

import sqlalchemy
import sqlalchemy.engine
import sqlalchemy.engine.create
import sqlalchemy.exc
from sqlalchemy.engine import URL, Engine

from brownout.breaker import Breaker, BreakerState, CircuitOpenError, OperationStats
from brownout.instrumentation.base import BreakerInstrumentor
from brownout.instrumentation.options import InstrumentationOptions
from brownout.instrumentation.wrapping import is_wrapped, unwrap, wrap, wrap_method

__all__ = [
    "SQLAlchemyBreakerInstrumentor",
    "SQLAlchemyCircuitOpenError",
    "engine_target",
    "statement_operation",
]


class SQLAlchemyCircuitOpenError(CircuitOpenError, sqlalchemy.exc.OperationalError):
    """Raised instead of touching the pool or the database while the breaker is open.

    An ``sqlalchemy.exc.OperationalError`` (so a ``DBAPIError``) with no statement and no
    DBAPI error behind it; ``args`` is ``(breaker, component, retry_after)``.
    """

    def __init__(self, breaker: str, component: str, retry_after: float | None) -> None:
        sqlalchemy.exc.OperationalError.__init__(self, None, None, Exception())
        self.orig = None
        self.args = (breaker, component, retry_after)

    def __str__(self) -> str:
        return CircuitOpenError.__str__(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)


_FAILURES = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # the pool's: no connection free within pool_timeout
)
_IGNORED = (
    sqlalchemy.exc.IntegrityError,
    sqlalchemy.exc.ProgrammingError,
    sqlalchemy.exc.DataError,
)


def classification(dbapi: Any) -> dict[str, Any]:
    """Which errors count as failures for an engine whose DBAPI module is ``dbapi``:
    SQLAlchemy's own errors and, since statements are timed at the DBAPI call, the
    DBAPI's (PEP 249 names them alike)."""

    def dbapi_errors(*names: str) -> tuple[type[BaseException], ...]:
        found = (getattr(dbapi, name, None) for name in names)
        return tuple(kind for kind in found if isinstance(kind, type))

    return {
        "record_exceptions": (*_FAILURES, *dbapi_errors("OperationalError", "InterfaceError")),
        "ignore_exceptions": (
            *_IGNORED,
            *dbapi_errors("IntegrityError", "ProgrammingError", "DataError"),
        ),
    }


def engine_target(url: URL | str) -> str:
    """The breaker name for an engine URL: backend, host, port, database; nothing else.

    >>> engine_target("postgresql+psycopg://app:pw@db:5432/shop?sslmode=require")
    'postgresql://db:5432/shop'
    """
    parsed = sqlalchemy.engine.make_url(url)
    bare = URL.create(
        parsed.get_backend_name(), host=parsed.host, port=parsed.port, database=parsed.database
    )
    return bare.render_as_string(hide_password=False)


_VERBS = frozenset((
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "WITH", "VALUES", "CREATE",
    "DROP", "ALTER", "TRUNCATE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET",
    "SHOW", "EXPLAIN", "CALL", "EXEC", "EXECUTE", "PRAGMA", "LOCK", "COPY", "GRANT", "REVOKE",
    "ANALYZE", "VACUUM", "REFRESH", "LISTEN", "NOTIFY", "DECLARE", "FETCH", "CLOSE",
))  # fmt: skip


def statement_operation(statement: object) -> str:
    """The operation label of a SQL statement: its leading verb, or ``OTHER``."""
    if not isinstance(statement, str):
        return "OTHER"
    head = statement[:64].lstrip(" \t\r\n(").split(None, 1)
    verb = head[0].upper() if head else ""
    return verb if verb in _VERBS else "OTHER"


_MAX_STATEMENTS = 1024  # distinct statement strings remembered per engine


class _Binding:
    """One engine's breaker (shared with engines made by ``execution_options()``, which
    share its dialect) and its operation records."""

    __slots__ = ("breaker", "checkouts", "connect", "statements")

    def __init__(self, breaker: Breaker) -> None:
        self.breaker = breaker
        self.connect = breaker.operation("CONNECT")
        # Permits of successful checkouts are given back here: not exported, not counted.
        self.checkouts = OperationStats("checkout")
        self.statements: dict[str, OperationStats] = {}

    def operation(self, statement: Any) -> OperationStats:
        stats = self.statements.get(statement) if isinstance(statement, str) else None
        if stats is None:
            stats = self.breaker.operation(statement_operation(statement))
            if isinstance(statement, str) and len(self.statements) < _MAX_STATEMENTS:
                self.statements[statement] = stats
        return stats


_HALF_OPEN = BreakerState.HALF_OPEN
_STATEMENT_HOOKS = ("do_execute", "do_executemany", "do_execute_no_params")
_FACTORIES: tuple[tuple[str, str], ...] = (
    ("sqlalchemy", "create_engine"),
    ("sqlalchemy.engine", "create_engine"),
    ("sqlalchemy.engine.create", "create_engine"),
)
_ASYNC_FACTORIES: tuple[tuple[str, str], ...] = (
    ("sqlalchemy.ext.asyncio", "create_async_engine"),
    ("sqlalchemy.ext.asyncio.engine", "create_async_engine"),
)


def _async_modules() -> list[tuple[Any, str]]:
    # sqlalchemy.ext.asyncio needs greenlet; without it there are no async engines to guard.
    try:
        return [
            (importlib.import_module(module), attribute) for module, attribute in _ASYNC_FACTORIES
        ]
    except ImportError:
        return []


def _sync_engine(engine: Any) -> Engine:
    sync = getattr(engine, "sync_engine", engine)
    if not isinstance(sync, Engine):
        raise TypeError(f"expected a SQLAlchemy Engine or AsyncEngine, got {type(engine).__name__}")
    return sync


class SQLAlchemyBreakerInstrumentor(BreakerInstrumentor):
    """Breakers around SQLAlchemy engines.

    ``instrument()`` guards engines created afterwards through ``sqlalchemy.create_engine``
    / ``sqlalchemy.ext.asyncio.create_async_engine`` (looked up on those modules at call
    time, like the OpenTelemetry instrumentation: a ``from sqlalchemy import
    create_engine`` done *before* ``instrument()`` keeps the unwrapped function), plus the
    existing ones passed as ``engine=`` or ``engines=[...]`` (sync or async).
    :meth:`instrument_engine` guards one engine with its own component or options.
    """

    default_component = "database"
    extra_options = frozenset({"engine", "engines"})

    # BaseInstrumentor is a singleton: state lives from one instrument() to uninstrument().
    _guarded: weakref.WeakKeyDictionary[Any, _Binding]
    _by_id: dict[int, _Binding]  # the same, by id(dialect): the checkout's cheap lookup
    _factories: list[tuple[Any, str]]

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("sqlalchemy >= 2.0",)

    def _install(self, options: InstrumentationOptions, **extras: Any) -> None:
        self._ensure_state()
        wrap_method(Engine, "raw_connection", self._checkout)
        self._factories = [
            (importlib.import_module(module), attribute) for module, attribute in _FACTORIES
        ]
        for owner, attribute in self._factories:
            wrap(owner, attribute, self._created)
        for owner, attribute in _async_modules():
            wrap(owner, attribute, self._created)
            self._factories.append((owner, attribute))
        engines: list[Any] = list(extras.get("engines") or [])
        if extras.get("engine") is not None:
            engines.append(extras["engine"])
        for engine in engines:
            self.instrument_engine(engine)

    def _remove(self) -> None:
        for owner, attribute in getattr(self, "_factories", []):
            unwrap(owner, attribute)
        self._factories = []
        unwrap(Engine, "raw_connection")
        for dialect in list(self._guarded):
            _unwrap_statements(dialect)
        self._guarded = weakref.WeakKeyDictionary()
        self._by_id = {}

    def _ensure_state(self) -> None:
        if not hasattr(self, "_guarded"):
            self._guarded = weakref.WeakKeyDictionary()
            self._by_id = {}

    # -- engines -------------------------------------------------------------------------

    def instrument_engine(
        self, engine: Any, *, component: str | None = None, **options: Any
    ) -> None:
        """Guard one engine (sync or async), with ``component`` and options of its own
        if given, else those passed to ``instrument()``."""
        self._ensure_state()
        if options or not hasattr(self, "options"):
            parsed: InstrumentationOptions = InstrumentationOptions.from_kwargs(options)
        else:
            parsed = self.options
        if component is not None:
            parsed = dataclasses.replace(parsed, component=component)
        sync = _sync_engine(engine)
        dialect = sync.dialect
        breaker = parsed.registry.breaker(
            engine_target(sync.url),
            component=parsed.component or self.default_component,
            config=parsed.breaker_config(classification(dialect.loaded_dbapi)),
            open_error=SQLAlchemyCircuitOpenError,
        )
        binding = _Binding(breaker)
        self._guarded[dialect] = binding
        self._by_id[id(dialect)] = binding
        # Forget it with the dialect, so a later object reusing the id cannot inherit it.
        weakref.finalize(dialect, self._by_id.pop, id(dialect), None)
        for hook in _STATEMENT_HOOKS:
            _unwrap_instance(dialect, hook)
            wrap_method(dialect, hook, _statement_method(binding))
        if not is_wrapped(Engine, "raw_connection"):
            # Guarding one engine without instrument(): its checkouts still need the gate.
            wrap_method(Engine, "raw_connection", self._checkout)

    def uninstrument_engine(self, engine: Any) -> None:
        """Undo :meth:`instrument_engine`; the engine's breaker stays in the registry."""
        self._ensure_state()
        dialect = _sync_engine(engine).dialect
        self._guarded.pop(dialect, None)
        self._by_id.pop(id(dialect), None)
        _unwrap_statements(dialect)
        if not self._guarded and not self.is_instrumented_by_opentelemetry:
            unwrap(Engine, "raw_connection")

    def _created(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: dict[str, Any]
    ) -> Any:
        engine = wrapped(*args, **kwargs)
        self.instrument_engine(engine)
        return engine

    def _checkout(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """The replacement of ``Engine.raw_connection``: the gate before the pool, built
        around the original so a checkout pays no adapter frame (with the statement
        hooks, ~1.2 µs less per query around a real SQLite call; benchmarks/README.md)."""
        instrumentor = self

        def raw_connection(engine: Any, *args: Any, **kwargs: Any) -> Any:
            binding = instrumentor._by_id.get(id(engine.dialect))
            if binding is None:
                return original(engine, *args, **kwargs)
            breaker = binding.breaker
            permit = breaker.acquire()  # an open breaker rejects here, before the pool
            started = breaker.clock()
            try:
                connection = original(engine, *args, **kwargs)
            except BaseException as error:
                breaker.on_error(permit, started, error, binding.connect)
                raise
            if breaker.clock() - started >= breaker.config.slow_call_seconds:
                breaker.on_success(permit, started, binding.connect)  # counted as slow
            elif breaker.state is _HALF_OPEN:
                # Only half-open counts its permits; give this one back for the statements.
                breaker.release(permit, started, binding.checkouts)
            return connection

        return raw_connection


def _statement_method(binding: _Binding) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The replacement of a dialect's ``do_execute`` (and its siblings), bound to the
    dialect: a bound function, where ``wrap`` would install a wrapt proxy on the instance."""
    breaker = binding.breaker
    statements = binding.statements

    def replace(original: Callable[..., Any]) -> Callable[..., Any]:
        def execute(dialect: Any, *args: Any, **kwargs: Any) -> Any:
            # do_execute(cursor, statement, parameters, context): the statement is args[1].
            statement = args[1] if len(args) > 1 else kwargs.get("statement")
            operation = statements.get(statement) if type(statement) is str else None
            if operation is None:
                operation = binding.operation(statement)
            return breaker.run(original, (dialect, *args), kwargs, operation)

        return execute

    return replace


def _unwrap_instance(owner: Any, attribute: str) -> None:
    if attribute not in vars(owner):
        return
    unwrap(owner, attribute)
    if not hasattr(vars(owner)[attribute], "__wrapped__"):
        del vars(owner)[attribute]  # back to the class's method


def _unwrap_statements(dialect: Any) -> None:
    for hook in _STATEMENT_HOOKS:
        _unwrap_instance(dialect, hook)
