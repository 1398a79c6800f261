"""Circuit breakers around redis-py: sync, asyncio, pipelines and cluster clients.

One breaker per target, named without credentials: ``redis://host:port/db`` (``rediss://``
over TLS, ``redis+unix:///path/to.sock/db`` for unix sockets, ``redis+sentinel://service/db``
behind Sentinel, ``redis+cluster://host:port,...`` for a cluster, named by its startup
nodes). Component ``cache`` unless told otherwise. The operation label is the command name
(``GET``, ``HSET``, ``PIPELINE``), never a key.

ConnectionError (BusyLoadingError included), TimeoutError and cluster-unavailable errors
(RedisClusterException, ClusterError, CLUSTERDOWN) are failures; ResponseError (WRONGTYPE,
script errors) and other errors are ignored: the server answered. An open
breaker raises :class:`RedisCircuitOpenError`, which is also a
``redis.exceptions.ConnectionError``.

**Cache features.** With ``enforce_features=True``, clients marked as caches
(``instrument(cache=True)`` for all of them, or ``instrument_client(client, cache=True)``)
obey the current level without calling redis:

- ``cache_read`` off: the read commands in :data:`CACHE_READS` answer as a miss: ``None``
  for a single value, a list of ``None`` for ``MGET`` / ``HMGET``, empty containers, ``0``
  for counts and ``False`` for membership tests.
- ``cache_write`` off: the write commands in :data:`CACHE_WRITES` are skipped and answer
  "not stored": ``None`` for ``SET`` (what redis-py returns when ``SET NX/XX`` stores
  nothing), ``False`` for the commands that return a boolean (``SETEX``, ``EXPIRE``...),
  ``0`` for the ones that return a count (``HSET``, ``SADD``...). Removals such as
  ``DEL`` always run, so invalidations are never lost.

Pipelines and transactions always run: their answers are positional, and a partial skip
would hand back misaligned results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import operator
import re
import types
import weakref
from collections.abc import Callable, Collection
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.cluster
import redis.client
import redis.cluster
import redis.exceptions
from redis.connection import SSLConnection, UnixDomainSocketConnection

from brownout.breaker import Breaker, OperationStats
from brownout.breaker.latency import DURATION_BOUNDARIES as _BOUNDARIES
from brownout.features import CACHE_READ, CACHE_WRITE
from brownout.health.snapshot import SnapshotBoard
from brownout.instrumentation.base import BreakerInstrumentor
from brownout.instrumentation.errors import native_open_error
from brownout.instrumentation.options import InstrumentationOptions
from brownout.instrumentation.wrapping import MethodFactory, is_wrapped, unwrap, wrap, wrap_method

__all__ = [
    "CACHE_READS",
    "CACHE_WRITES",
    "RedisBreakerInstrumentor",
    "RedisCircuitOpenError",
    "redis_target",
]

RedisCircuitOpenError = native_open_error(redis.exceptions.ConnectionError, "RedisCircuitOpenError")
"""Raised instead of calling redis while the breaker is open; also a
``redis.exceptions.ConnectionError``."""

CLASSIFICATION: dict[str, Any] = {
    # BusyLoadingError is a ConnectionError; asyncio timeouts surface as TimeoutError. A
    # cluster whose nodes are all unreachable raises RedisClusterException after its own
    # retries, and one that has lost slots answers CLUSTERDOWN (a ResponseError, but the
    # cluster is not serving).
    "record_exceptions": (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        TimeoutError,
        redis.exceptions.RedisClusterException,
        redis.exceptions.ClusterError,
        redis.exceptions.ClusterDownError,
    ),
}

_Args = tuple[Any, ...]

CACHE_READS: dict[str, Callable[[_Args], Any]] = {
    **dict.fromkeys(("GET", "GETEX", "HGET", "LINDEX", "ZSCORE"), lambda args: None),
    "MGET": lambda args: [None] * (len(args) - 1),
    "HMGET": lambda args: [None] * max(len(args) - 2, 0),
    "HGETALL": lambda args: {},
    **dict.fromkeys(("HKEYS", "HVALS", "LRANGE", "ZRANGE"), lambda args: []),
    "SMEMBERS": lambda args: set(),
    **dict.fromkeys(("EXISTS", "HLEN", "LLEN", "SCARD", "ZCARD", "STRLEN"), lambda args: 0),
    **dict.fromkeys(("HEXISTS", "SISMEMBER"), lambda args: False),
}
"""Read commands a cache client answers as a miss while ``cache_read`` is off, with the
miss each answers (built per call: callers may mutate what they get)."""

CACHE_WRITES: dict[str, Any] = {
    "SET": None,
    **dict.fromkeys(
        ("SETNX", "SETEX", "PSETEX", "MSET", "MSETNX", "HMSET", "HSETNX", "EXPIRE",
         "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST"),
        False,
    ),
    **dict.fromkeys(("HSET", "SADD", "ZADD", "LPUSH", "RPUSH"), 0),
}  # fmt: skip
"""Write commands a cache client skips while ``cache_write`` is off, with the "not
stored" answer each returns. Removals (``DEL``, ``UNLINK``, ``HDEL``, ``SREM``, ``ZREM``)
always run: skipping an invalidation would leave a stale entry that reads, still on at
DEGRADED, would keep serving."""

_OTHER = "OTHER"
_MAX_OPERATIONS = 128  # per breaker: command names are bounded, but execute_command isn't
_COMMAND_NAME = re.compile(r"[A-Z][A-Z0-9_.|-]{0,31}( [A-Z][A-Z0-9_.|-]{0,31})?")
_PROCEED = object()


def redis_target(client: Any) -> str:
    """The breaker name for a redis-py client, pipeline or connection pool: where it
    connects, without user name or password."""
    nodes = getattr(client, "nodes_manager", None)
    if nodes is not None:
        return _cluster_target(nodes)
    pool = getattr(client, "connection_pool", client)
    kwargs: dict[str, Any] = getattr(pool, "connection_kwargs", {})
    db = kwargs.get("db", 0)
    service = getattr(pool, "service_name", None)
    if service is not None:
        return f"redis+sentinel://{service}/{db}"
    connection_class = getattr(pool, "connection_class", None)
    if isinstance(connection_class, type) and issubclass(
        connection_class, UnixDomainSocketConnection | redis.asyncio.UnixDomainSocketConnection
    ):
        return f"redis+unix://{kwargs.get('path', '')}/{db}"
    secure = isinstance(connection_class, type) and issubclass(
        connection_class, SSLConnection | redis.asyncio.SSLConnection
    )
    host = str(kwargs.get("host", "localhost"))
    if ":" in host:
        host = f"[{host}]"
    return f"{'rediss' if secure else 'redis'}://{host}:{kwargs.get('port', 6379)}/{db}"


def _cluster_target(nodes: Any) -> str:
    names = sorted(str(name) for name in getattr(nodes, "startup_nodes", {}))
    shown = ",".join(names[:3])
    more = f"+{len(names) - 3}" if len(names) > 3 else ""
    return f"redis+cluster://{shown}{more}"


def _operation_name(command: object) -> str:
    if isinstance(command, bytes):
        command = command.decode("ascii", "replace")
    if not isinstance(command, str):
        return _OTHER
    name = command.upper()
    return name if _COMMAND_NAME.fullmatch(name) else _OTHER


class _Binding:
    """What calls through one client (or connection pool) go through: its breaker,
    whether it is a cache obeying the cache features, and its operations.

    Each client keeps the binding it resolved (see ``_resolver``); a binding that stops
    applying (``uninstrument()``, ``instrument_client`` taking over its pool) is marked
    ``retired``, and the clients holding it resolve again on their next call.
    """

    __slots__ = ("board", "breaker", "enforce", "operations", "retired")

    def __init__(self, breaker: Breaker, enforce: bool, board: SnapshotBoard) -> None:
        self.breaker = breaker
        self.enforce = enforce
        self.board = board
        self.operations: dict[object, OperationStats] = {}
        self.retired = False

    def operation(self, command: object) -> OperationStats:
        try:
            return self.operations[command]
        except (KeyError, TypeError):  # TypeError: an unhashable command
            name = _operation_name(command)
            known = self.breaker.operations()
            if len(known) >= _MAX_OPERATIONS and all(stats.name != name for stats in known):
                name = _OTHER
            stats = self.breaker.operation(name)
            if len(self.operations) < _MAX_OPERATIONS and isinstance(command, str | bytes):
                self.operations[command] = stats
            return stats

    def cache_answer(self, operation: str, args: _Args) -> Any:
        """The answer to give without calling redis, or ``_PROCEED``."""
        snapshot = self.board.snapshot
        miss = CACHE_READS.get(operation)
        if miss is not None:
            return _PROCEED if snapshot.enabled(CACHE_READ) else miss(args)
        if operation in CACHE_WRITES and not snapshot.enabled(CACHE_WRITE):
            return CACHE_WRITES[operation]
        return _PROCEED


_Bindings = dict[int, _Binding]

_client_bindings: _Bindings = {}
"""Bindings set by ``instrument_client``, by id of the client's key object (its
connection pool, or its cluster); they take precedence over the instrumentor's."""


def _remember(table: _Bindings, key: object, binding: _Binding) -> None:
    table[id(key)] = binding
    # Forget it with the key, so a later object reusing the id cannot inherit it.
    weakref.finalize(key, table.pop, id(key), None)


def _retire(binding: _Binding | None) -> None:
    if binding is not None:
        binding.retired = True


_RETIRED = _Binding.__new__(_Binding)
_RETIRED.retired = True
"""Stands for "not resolved yet" on the hot paths, so they test one flag."""


def _resolver(
    key_of: Callable[[Any], Any], bindings: _Bindings, bind: Callable[[Any], _Binding]
) -> Callable[[Any], _Binding]:
    """Finds the binding of an instance by the id of its key object (connection pool or
    cluster), ``instrument_client`` settings first, making it with ``bind`` on first
    use, and keeps it on the instance as ``_brownout_binding``: one attribute read per
    call, where the lookup costs ~1.5 µs around a real round trip (benchmarks/README.md)."""

    def resolve(instance: Any) -> _Binding:
        key = id(key_of(instance))
        binding = _client_bindings.get(key) or bindings.get(key)
        if binding is None or binding.retired:
            binding = bind(instance)
        with contextlib.suppress(AttributeError, TypeError):  # no instance dict
            instance._brownout_binding = binding
        return binding

    return resolve


_FIRST_BOUNDARY = _BOUNDARIES[0]

_pool = operator.attrgetter("connection_pool")
_nodes = operator.attrgetter("nodes_manager")
_cluster_client = operator.attrgetter("cluster_client")


def _itself(instance: Any) -> Any:
    return instance


# (owner, attribute, key getter, async?, pipeline?)
_TARGETS: tuple[tuple[type, str, Callable[[Any], Any], bool, bool], ...] = (
    (redis.Redis, "execute_command", _pool, False, False),
    (redis.client.Pipeline, "execute", _pool, False, True),
    (redis.client.Pipeline, "immediate_execute_command", _pool, False, False),
    (redis.cluster.RedisCluster, "execute_command", _nodes, False, False),
    (redis.cluster.ClusterPipeline, "execute", _nodes, False, True),
    (redis.asyncio.Redis, "execute_command", _pool, True, False),
    (redis.asyncio.client.Pipeline, "execute", _pool, True, True),
    (redis.asyncio.client.Pipeline, "immediate_execute_command", _pool, True, False),
    (redis.asyncio.cluster.RedisCluster, "execute_command", _itself, True, False),
    (redis.asyncio.cluster.ClusterPipeline, "execute", _cluster_client, True, True),
)


class RedisBreakerInstrumentor(BreakerInstrumentor):
    """Breakers around every redis-py client (``instrument()``) or one client
    (``instrument_client(client)``).

    ``instrument()`` takes the shared options (``registry``, ``meter_provider``,
    ``component``, ``config``, ``board``, ``enforce_features``) and ``cache=True`` to treat
    every redis client as a cache that obeys ``cache_read`` / ``cache_write``.
    """

    default_component = "cache"
    extra_options = frozenset({"cache"})

    # BaseInstrumentor is a singleton: state lives from one instrument() to uninstrument().
    _bindings: _Bindings
    _cache: bool = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("redis >= 4.0",)

    # -- the whole library ---------------------------------------------------------------

    def _install(self, options: InstrumentationOptions, **extras: Any) -> None:
        self._cache = bool(extras.get("cache", False))
        self._bindings = {}
        for owner, attribute, key, is_async, pipeline in _TARGETS:
            _guard(owner, attribute, key, self._bindings, self._binder(key), is_async, pipeline)

    def _remove(self) -> None:
        for owner, attribute, *_ in _TARGETS:
            unwrap(owner, attribute)
        for binding in self._bindings.values():
            _retire(binding)
        self._bindings = {}

    def _binder(self, key_of: Callable[[Any], Any]) -> Callable[[Any], _Binding]:
        bindings = self._bindings

        def bind(instance: Any) -> _Binding:
            binding = self._bind(instance, self.options, self._cache)
            _remember(bindings, key_of(instance), binding)
            return binding

        return bind

    def _bind(self, client: Any, options: InstrumentationOptions, cache: bool) -> _Binding:
        breaker = options.registry.breaker(
            redis_target(client),
            component=options.component or self.default_component,
            config=options.breaker_config(CLASSIFICATION),
            open_error=RedisCircuitOpenError,
        )
        return _Binding(breaker, cache and options.enforce_features, options.board)

    # -- one client ----------------------------------------------------------------------

    def instrument_client(
        self, client: Any, *, cache: bool = False, component: str | None = None, **options: Any
    ) -> None:
        """Put ``client`` (and the pipelines it makes) behind its breaker.

        ``cache=True`` marks it as a cache that obeys ``cache_read`` / ``cache_write``
        when ``enforce_features`` is on; ``component`` names its component. The other
        keywords are the shared options; without them, those given to ``instrument()``
        (or the defaults) apply. Clients sharing a connection pool share these settings.
        """
        if options or not hasattr(self, "options"):
            parsed: InstrumentationOptions = InstrumentationOptions.from_kwargs(options)
        else:
            parsed = self.options
        if component is not None:
            parsed = dataclasses.replace(parsed, component=component)
        binding = self._bind(client, parsed, cache)
        key = _client_key(client)
        # Clients that resolved the binding this one replaces must resolve again.
        _retire(_client_bindings.get(id(key)))
        _retire(getattr(self, "_bindings", {}).get(id(key)))
        _remember(_client_bindings, key, binding)
        if is_wrapped(type(client), "execute_command"):
            return  # the class-level wrappers find the binding
        is_async = isinstance(client, redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster)
        _guard(client, "execute_command", _itself, {}, lambda _: binding, is_async, False)
        wrap(client, "pipeline", _pipeline_factory(binding, is_async))

    def uninstrument_client(self, client: Any) -> None:
        """Undo :meth:`instrument_client` for ``client``."""
        _retire(_client_bindings.pop(id(_client_key(client)), None))
        vars(client).pop("_brownout_binding", None)
        for attribute in ("execute_command", "pipeline"):
            if attribute in vars(client):
                unwrap(client, attribute)
                if not is_wrapped(client, attribute) and not _is_proxy(vars(client)[attribute]):
                    del vars(client)[attribute]  # back to the class's method


def _client_key(client: Any) -> Any:
    if isinstance(client, redis.cluster.RedisCluster):
        return client.nodes_manager
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        return client
    return client.connection_pool


def _is_proxy(value: object) -> bool:
    return hasattr(value, "__wrapped__")


def _guard(
    owner: object,
    attribute: str,
    key_of: Callable[[Any], Any],
    bindings: _Bindings,
    bind: Callable[[Any], _Binding],
    is_async: bool,
    pipeline: bool,
) -> None:
    """Put one redis method behind the breakers. The binding of the instance is found by
    the id of its key object (connection pool or cluster), ``instrument_client`` settings
    first; ``bind`` makes it on first use."""
    resolve = _resolver(key_of, bindings, bind)
    if pipeline:
        wrap(owner, attribute, _pipeline_wrapper(resolve, is_async))
    elif is_async:
        wrap_method(owner, attribute, _async_command_method(resolve))
    else:
        wrap_method(owner, attribute, _command_method(resolve))


def _pipeline_wrapper(resolve: Callable[[Any], _Binding], is_async: bool) -> Callable[..., Any]:
    """The wrapt wrapper for a pipeline's ``execute``."""

    def binding_for(instance: Any) -> _Binding:
        binding: _Binding = getattr(instance, "_brownout_binding", _RETIRED)
        return resolve(instance) if binding.retired else binding

    if is_async:

        async def execute_pipeline_async(
            wrapped: Callable[..., Any], instance: Any, args: _Args, kwargs: dict[str, Any]
        ) -> Any:
            binding = binding_for(instance)
            operation = binding.breaker.operation(_pipeline_operation(instance))
            return await binding.breaker.run_async(wrapped, args, kwargs, operation)

        return execute_pipeline_async

    def execute_pipeline(
        wrapped: Callable[..., Any], instance: Any, args: _Args, kwargs: dict[str, Any]
    ) -> Any:
        binding = binding_for(instance)
        operation = binding.breaker.operation(_pipeline_operation(instance))
        return binding.breaker.run(wrapped, args, kwargs, operation)

    return execute_pipeline


def _command_method(resolve: Callable[[Any], _Binding]) -> MethodFactory:
    """The replacement of a sync ``execute_command``: the hot path of every redis call,
    with the binding lookup and :meth:`Breaker.run` inlined."""

    def replace(original: Callable[..., Any]) -> Callable[..., Any]:
        # redis-py's Redis.execute_command only forwards to _execute_command: calling
        # that directly spares a frame and a repacking of the arguments, ~1 µs around a
        # real round trip (benchmarks/README.md). Anything else (another wrapper, a
        # changed redis-py) is called as it is.
        forward = _only_forwards(original)

        def execute_command(self: Any, *args: Any, **options: Any) -> Any:
            try:
                binding = self._brownout_binding
            except AttributeError:
                binding = _RETIRED
            if binding.retired:
                binding = resolve(self)
            try:
                operation = binding.operations[args[0]]
            except (IndexError, KeyError, TypeError):
                operation = binding.operation(args[0] if args else None)
            if binding.enforce:
                answer = binding.cache_answer(operation.name, args)
                if answer is not _PROCEED:
                    return answer
            # Breaker.run, inlined: calling it would repack the arguments once more and
            # add two frames, ~0.4 µs around a real round trip (benchmarks/README.md).
            breaker = binding.breaker
            permit = breaker._generation if breaker._passthrough else breaker._acquire_slow()
            clock = breaker.clock
            started = clock()
            try:
                if forward:
                    result = self._execute_command(*args, **options)
                else:
                    result = original(self, *args, **options)
            except BaseException as error:
                breaker.on_error(permit, started, error, operation)
                raise
            now = clock()
            duration = now - started
            if (
                now < breaker._fast_until
                and duration < breaker._slow_seconds
                and permit == breaker._generation
            ):
                histogram = operation.success
                if duration <= _FIRST_BOUNDARY:
                    histogram.first_count += 1
                    histogram.first_sum += duration
                else:
                    histogram.record(duration)
                breaker._pending += 1
            else:
                breaker._finish(permit, now, duration, result, operation)
            return result

        return execute_command

    return replace


def _async_command_method(resolve: Callable[[Any], _Binding]) -> MethodFactory:
    """The replacement of an asyncio ``execute_command``: :func:`_command_method`'s
    lookups, then :meth:`Breaker.run_async` inlined (calling it would add a coroutine
    frame to every await). Built around the original like the sync one: a wrapt proxy
    and ``run_async`` cost ~1.5 µs more per GET (benchmarks/README.md)."""

    def replace(original: Callable[..., Any]) -> Callable[..., Any]:
        async def execute_command(self: Any, *args: Any, **options: Any) -> Any:
            try:
                binding = self._brownout_binding
            except AttributeError:
                binding = _RETIRED
            if binding.retired:
                binding = resolve(self)
            try:
                operation = binding.operations[args[0]]
            except (IndexError, KeyError, TypeError):
                operation = binding.operation(args[0] if args else None)
            if binding.enforce:
                answer = binding.cache_answer(operation.name, args)
                if answer is not _PROCEED:
                    return answer
            breaker = binding.breaker
            permit = breaker._generation if breaker._passthrough else breaker._acquire_slow()
            clock = breaker.clock
            started = clock()
            try:
                result = await original(self, *args, **options)
            except BaseException as error:
                breaker.on_error(permit, started, error, operation)
                raise
            breaker._succeeded(permit, started, clock(), result, operation)
            return result

        return execute_command

    return replace


_REDIS_EXECUTE_COMMAND = inspect.unwrap(vars(redis.Redis)["execute_command"])


def _only_forwards(method: Callable[..., Any]) -> bool:
    """Whether ``method`` is redis-py's own ``Redis.execute_command``, and it still only
    returns ``self._execute_command(*args, **options)``."""
    return (
        method is _REDIS_EXECUTE_COMMAND
        and isinstance(method, types.FunctionType)
        and method.__code__.co_names == ("_execute_command",)
    )


def _pipeline_operation(pipeline: Any) -> str:
    # Sync pipelines say `transaction`, asyncio ones `is_transaction`; on the others
    # `transaction` is a method (always true), hence `is True`.
    transaction = getattr(pipeline, "is_transaction", None)
    if transaction is None:
        transaction = getattr(pipeline, "transaction", False)
    return "MULTI" if transaction is True else "PIPELINE"


def _pipeline_factory(binding: _Binding, is_async: bool) -> Callable[..., Any]:
    """Wraps ``client.pipeline`` of a client instrumented on its own, so the pipelines it
    makes go through the client's breaker too."""
    execute = _pipeline_wrapper(_resolver(_itself, {}, lambda _: binding), is_async)

    def make_pipeline(
        wrapped: Callable[..., Any], instance: Any, args: _Args, kwargs: dict[str, Any]
    ) -> Any:
        pipe = wrapped(*args, **kwargs)
        if not is_wrapped(type(pipe), "execute"):
            wrap(pipe, "execute", execute)
            if hasattr(pipe, "immediate_execute_command"):
                _guard(
                    pipe, "immediate_execute_command", _itself, {}, lambda _: binding,
                    is_async, False,
                )  # fmt: skip
        return pipe

    return make_pipeline
