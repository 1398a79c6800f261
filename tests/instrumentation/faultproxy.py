"""A TCP proxy that injects network faults between a client and a real server.

    with FaultProxy("127.0.0.1", 5432) as proxy:
        engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/test")
        proxy.latency(0.2)   # every chunk, either direction, waits 200 ms
        proxy.blackhole()    # connections are accepted, bytes are swallowed, nothing answers
        proxy.reset()        # every connection, open or new, is reset (RST)
        proxy.refuse()       # nothing listens: connect() is refused; open connections reset
        proxy.passthrough()  # back to normal

The proxy runs its own asyncio loop in a daemon thread, so sync and async clients (and
tests running on another event loop) can use it alike. Switching modes is synchronous:
when ``reset()`` returns, open connections have been reset; when ``refuse()`` returns,
the port no longer accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

_CHUNK = 65536
_RST_LINGER = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


async def _settle() -> None:
    """Let callbacks already scheduled run: abort() closes its socket in one, and a just
    accepted connection starts its handler in another."""
    for _ in range(3):
        await asyncio.sleep(0)


def _reset_socket(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
    sock.close()


class Mode(enum.Enum):
    PASS = "pass"
    LATENCY = "latency"
    BLACKHOLE = "blackhole"
    RESET = "reset"
    REFUSE = "refuse"


class _Link:
    """One proxied connection: the client's side and, unless blackholed, the server's."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None

    def reset(self) -> None:
        for writer in (self.client, self.server):
            if writer is None or writer.transport.is_closing():
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
            writer.transport.abort()  # closes the socket, which with linger 0 sends RST


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``, with faults."""

    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.mode = Mode.PASS
        self.delay = 0.0
        self._links: set[_Link] = set()
        self._closing = False
        self._handlers: set[asyncio.Task[None]] = set()
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def connections(self) -> int:
        """Connections currently open through the proxy."""
        return len(self._links)

    # -- modes ---------------------------------------------------------------------------

    def passthrough(self) -> None:
        self._switch(Mode.PASS)

    def latency(self, seconds: float) -> None:
        """Delay every chunk, in either direction, by ``seconds``."""
        self._switch(Mode.LATENCY, seconds)

    def blackhole(self) -> None:
        """Accept connections and swallow every byte; nothing is forwarded or answered."""
        self._switch(Mode.BLACKHOLE)

    def reset(self) -> None:
        """Reset (RST) every open connection, and every new one as soon as it is accepted."""
        self._switch(Mode.RESET)

    def refuse(self) -> None:
        """Stop listening, so connecting is refused; open connections are reset."""
        self._switch(Mode.REFUSE)

    def _switch(self, mode: Mode, delay: float = 0.0) -> None:
        self._run(self._apply(mode, delay))

    # -- the loop's side -----------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _apply(self, mode: Mode, delay: float) -> None:
        self.mode, self.delay = mode, delay
        if mode in (Mode.RESET, Mode.REFUSE):
            await self._reset_all()
        if mode is Mode.REFUSE:
            await self._stop_listening()
            await _settle()
        elif self._listener is None:
            await self._listen()

    async def _reset_all(self) -> None:
        for link in list(self._links):
            link.reset()
        await _settle()

    async def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # The same port every time, so clients keep their URL across refuse -> pass.
        listener.bind((self.host, self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._acceptor = asyncio.get_running_loop().create_task(self._accept_loop(listener))

    async def _accept_loop(self, listener: socket.socket) -> None:
        # Our own loop rather than asyncio.start_server: closing an asyncio Server in 3.11
        # leaks a connection accepted in the same instant (never answered, never reset).
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(listener)
            if listener is not self._listener:
                _reset_socket(connection)  # the wake-up call from _stop_listening
                listener.close()  # what still waits in the backlog is reset by the kernel
                return
            handler = loop.create_task(self._accept(connection))
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)

    async def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        # Wake the accept loop with a connection of our own rather than cancelling it:
        # a cancelled sock_accept can lose a connection it has just accepted.
        loop = asyncio.get_running_loop()
        with socket.socket() as waker:
            waker.setblocking(False)
            with contextlib.suppress(OSError):  # it is reset as soon as it is accepted
                await loop.sock_connect(waker, listener.getsockname())
        if self._acceptor is not None:
            await self._acceptor
            self._acceptor = None

    async def _shutdown(self) -> None:
        self._closing = True
        await self._stop_listening()
        await self._reset_all()
        # Handlers of connections accepted a moment ago see `_closing` and reset theirs.
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5)
        await _settle()

    async def _accept(self, connection: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=connection)
        link = _Link(writer)
        self._links.add(link)
        try:
            if self._closing or self.mode in (Mode.RESET, Mode.REFUSE):
                link.reset()
                return
            if self.mode is Mode.BLACKHOLE:
                await self._swallow(reader)
                return
            try:
                upstream_reader, link.server = await asyncio.open_connection(*self.upstream)
            except OSError:
                link.reset()
                return
            await asyncio.gather(
                self._pump(reader, link.server), self._pump(upstream_reader, writer)
            )
        finally:
            self._links.discard(link)
            if self._closing or self.mode in (Mode.RESET, Mode.REFUSE):
                link.reset()
            else:
                self._close(link)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        try:
            while await reader.read(_CHUNK):
                pass
        except OSError:
            pass

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                mode = self.mode
                if mode is Mode.BLACKHOLE:
                    continue
                if mode is Mode.LATENCY:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()

    @staticmethod
    def _close(link: _Link) -> None:
        for writer in (link.client, link.server):
            if writer is not None and not writer.transport.is_closing():
                writer.close()
