"""An in-process redis the demo can kill and bring back on the same port, for machines
without ``redis-server``.

It speaks just enough RESP for the retail example through redis-py: the connection
handshake (``HELLO 3``, ``CLIENT SETINFO``, ``SELECT``), strings with expiry, counters and
the key commands. Anything else answers ``-ERR unknown command``. ``kill()`` drops the
listening socket and every client connection at once and forgets the data, the way a
crashed redis without persistence does.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from examples.demo.ports import free_port

_TIMEOUT_SECONDS = 10.0

T = TypeVar("T")


class _Error(Exception):
    """A command the stand-in refuses; the message goes back as a RESP error."""


@dataclass
class _Keyspace:
    """One database: values with optional expiry deadlines (``time.monotonic``)."""

    values: dict[bytes, bytes] = field(default_factory=dict)
    deadlines: dict[bytes, float] = field(default_factory=dict)

    def get(self, key: bytes) -> bytes | None:
        deadline = self.deadlines.get(key)
        if deadline is not None and deadline <= time.monotonic():
            self.delete(key)
        return self.values.get(key)

    def set(self, key: bytes, value: bytes, ttl_seconds: float | None) -> None:
        self.values[key] = value
        self.deadlines.pop(key, None)
        if ttl_seconds is not None:
            self.deadlines[key] = time.monotonic() + ttl_seconds

    def delete(self, key: bytes) -> bool:
        self.deadlines.pop(key, None)
        return self.values.pop(key, None) is not None


_Reply = bytes | int | None | list[bytes | None] | dict[bytes, bytes | int | list[bytes]]


class _Ok:
    """``+OK``: a status reply, not the bulk string ``OK``."""


OK = _Ok()


def _encode(reply: _Reply | _Ok, resp3: bool) -> bytes:
    if isinstance(reply, _Ok):
        return b"+OK\r\n"
    if reply is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    if isinstance(reply, dict):
        items = [(k, v) for k, v in reply.items()]
        head = b"%%%d\r\n" % len(items) if resp3 else b"*%d\r\n" % (2 * len(items))
        return head + b"".join(
            _encode(name, resp3) + _encode(value, resp3)  # type: ignore[arg-type]
            for name, value in items
        )
    return b"*%d\r\n" % len(reply) + b"".join(_encode(item, resp3) for item in reply)


def _number(argument: bytes, what: str = "value is not an integer or out of range") -> int:
    try:
        return int(argument)
    except ValueError:
        raise _Error(f"ERR {what}") from None


class _Session:
    """One client connection: its protocol version, its selected database."""

    def __init__(self, databases: dict[int, _Keyspace]) -> None:
        self.databases = databases
        self.resp3 = False
        self.db = 0

    @property
    def keyspace(self) -> _Keyspace:
        return self.databases.setdefault(self.db, _Keyspace())

    def execute(self, command: list[bytes]) -> bytes:
        name = command[0].decode(errors="replace").lower()
        handler = self._COMMANDS.get(name)
        try:
            if handler is None:
                start = " ".join(f"'{a.decode(errors='replace')}'" for a in command[1:4])
                raise _Error(f"ERR unknown command '{name}', with args beginning with: {start}")
            method, arity = handler
            if (arity >= 0 and len(command) != arity) or len(command) < -arity:
                raise _Error(f"ERR wrong number of arguments for '{name}' command")
            return _encode(method(self, command[1:]), self.resp3)
        except _Error as error:
            return b"-%s\r\n" % str(error).encode()

    def ping(self, args: list[bytes]) -> _Reply | _Ok:
        if args:
            return args[0]
        return b"PONG"  # sent as a bulk string; redis-py reads both forms as PONG

    def hello(self, args: list[bytes]) -> _Reply | _Ok:
        if args:
            version = _number(args[0], "Protocol version is not an integer or out of range")
            if version not in (2, 3):
                raise _Error("NOPROTO unsupported protocol version")
            self.resp3 = version == 3
        return {
            b"server": b"redis",
            b"version": b"7.2.0",
            b"proto": 3 if self.resp3 else 2,
            b"id": 1,
            b"mode": b"standalone",
            b"role": b"master",
            b"modules": [],
        }

    def client(self, args: list[bytes]) -> _Reply | _Ok:
        if args[0].upper() in (b"SETINFO", b"SETNAME"):
            return OK
        raise _Error(f"ERR unknown subcommand '{args[0].decode(errors='replace')}'")

    def select(self, args: list[bytes]) -> _Reply | _Ok:
        db = _number(args[0])
        if not 0 <= db < 16:
            raise _Error("ERR DB index is out of range")
        self.db = db
        return OK

    def get(self, args: list[bytes]) -> _Reply | _Ok:
        return self.keyspace.get(args[0])

    def set(self, args: list[bytes]) -> _Reply | _Ok:
        key, value, options = args[0], args[1], iter(args[2:])
        ttl: float | None = None
        only_if: Callable[[bool], bool] = lambda exists: True  # noqa: E731
        for option in options:
            flag = option.upper()
            if flag in (b"EX", b"PX"):
                amount = _number(next(options, b""))
                if amount <= 0:
                    raise _Error("ERR invalid expire time in 'set' command")
                ttl = amount if flag == b"EX" else amount / 1000
            elif flag == b"NX":
                only_if = lambda exists: not exists  # noqa: E731
            elif flag == b"XX":
                only_if = lambda exists: exists  # noqa: E731
            else:
                raise _Error("ERR syntax error")
        if not only_if(self.keyspace.get(key) is not None):
            return None
        self.keyspace.set(key, value, ttl)
        return OK

    def setex(self, args: list[bytes]) -> _Reply | _Ok:
        seconds = _number(args[1])
        if seconds <= 0:
            raise _Error("ERR invalid expire time in 'setex' command")
        self.keyspace.set(args[0], args[2], seconds)
        return OK

    def mget(self, args: list[bytes]) -> _Reply | _Ok:
        return [self.keyspace.get(key) for key in args]

    def delete(self, args: list[bytes]) -> _Reply | _Ok:
        return sum(self.keyspace.get(key) is not None and self.keyspace.delete(key) for key in args)

    def exists(self, args: list[bytes]) -> _Reply | _Ok:
        return sum(self.keyspace.get(key) is not None for key in args)

    def expire(self, args: list[bytes]) -> _Reply | _Ok:
        seconds = _number(args[1])
        value = self.keyspace.get(args[0])
        if value is None:
            return 0
        if seconds <= 0:
            self.keyspace.delete(args[0])
        else:
            self.keyspace.set(args[0], value, seconds)
        return 1

    def ttl(self, args: list[bytes]) -> _Reply | _Ok:
        if self.keyspace.get(args[0]) is None:
            return -2
        deadline = self.keyspace.deadlines.get(args[0])
        if deadline is None:
            return -1
        return math.ceil(deadline - time.monotonic())

    def incr(self, args: list[bytes]) -> _Reply | _Ok:
        """``INCR key`` and ``INCRBY key amount`` (what redis-py's ``incr()`` sends)."""
        key = args[0]
        current = self.keyspace.get(key)
        value = _number(current or b"0") + (_number(args[1]) if len(args) > 1 else 1)
        self.keyspace.values[key] = b"%d" % value  # INCR keeps the key's expiry
        return value

    def flushdb(self, args: list[bytes]) -> _Reply | _Ok:
        self.databases.pop(self.db, None)
        return OK

    # name -> (method, arity counting the name; negative: at least that many)
    _COMMANDS: ClassVar[dict[str, tuple[Callable[[_Session, list[bytes]], _Reply | _Ok], int]]] = {
        "ping": (ping, -1),
        "hello": (hello, -1),
        "client": (client, -2),
        "select": (select, 2),
        "get": (get, 2),
        "set": (set, -3),
        "setex": (setex, 4),
        "mget": (mget, -2),
        "del": (delete, -2),
        "unlink": (delete, -2),
        "exists": (exists, -2),
        "expire": (expire, 3),
        "ttl": (ttl, 2),
        "incr": (incr, 2),
        "incrby": (incr, 3),
        "flushdb": (flushdb, -1),
    }


async def _read_command(reader: asyncio.StreamReader) -> list[bytes]:
    """One RESP array of bulk strings, what every redis client sends."""
    header = await reader.readuntil(b"\r\n")
    if not header.startswith(b"*"):
        raise ConnectionError("not a RESP array")
    command = []
    for _ in range(int(header[1:-2])):
        length = await reader.readuntil(b"\r\n")
        if not length.startswith(b"$"):
            raise ConnectionError("not a RESP bulk string")
        command.append((await reader.readexactly(int(length[1:-2]) + 2))[:-2])
    return command


class RedisStandIn:
    description = "in-process redis stand-in (no redis-server found)"

    def __init__(self) -> None:
        self.port = free_port()
        self._databases: dict[int, _Keyspace] = {}
        self._connections: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="demo-redis", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._loop.is_closed():
            raise RuntimeError("the redis stand-in is closed")
        if self._server is None:
            self._server = self._run(self._listen())

    def kill(self) -> None:
        """Close the port and every connection with no goodbye; the data is gone."""
        if self._server is not None and not self._loop.is_closed():
            self._run(self._abort(self._server))
        self._server = None

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.kill()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_TIMEOUT_SECONDS)
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_TIMEOUT_SECONDS)

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _abort(self, server: asyncio.Server) -> None:
        server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()
        self._databases.clear()
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        session = _Session(self._databases)
        try:
            while True:
                command = await _read_command(reader)
                if command:
                    writer.write(session.execute(command))
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass  # the client left, or sent something that is not RESP
        finally:
            self._connections.discard(writer)
            writer.transport.abort()
