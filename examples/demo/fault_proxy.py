"""A TCP proxy in front of a real server that can add latency or swallow traffic.

``latency(seconds)`` delays every chunk sent to the server (each request waits that long);
``blackhole(True)`` keeps connections open but forwards nothing either way, so clients
see their own read timeouts, as with a hung server or a dropped network path.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.delay = 0.0
        self.swallow = False
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> FaultProxy:
        threading.Thread(target=self._accept, name="demo-proxy", daemon=True).start()
        return self

    def latency(self, seconds: float) -> None:
        self.delay = seconds

    def blackhole(self, on: bool) -> None:
        self.swallow = on

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            self._sockets.clear()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()  # the server is down: so is the proxy, for this client
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink, outbound in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, outbound), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, outbound: bool) -> None:
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select([source], [], [], 0.5)
                if not ready:
                    continue
                data = source.recv(65536)
                if not data:
                    break
                if self.swallow:
                    continue
                if outbound and self.delay > 0:
                    time.sleep(self.delay)
                sink.sendall(data)
        except (OSError, ValueError):  # ValueError: the other direction closed it
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with self._lock:
                    self._sockets.discard(sock)
                with contextlib.suppress(OSError):
                    sock.close()
