"""The fault proxy itself, against a tiny echo server: each mode does what it says."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.instrumentation.faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass  # the proxy reset us: that is what the reset tests do


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[0], server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(*echo) as proxy:
        yield proxy


def _connect(proxy: FaultProxy, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=timeout)


def _roundtrip(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    sock.sendall(payload)
    return sock.recv(65536)


def test_passes_bytes_both_ways(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock) == b"ping"


def test_latency_delays_each_chunk(proxy: FaultProxy) -> None:
    proxy.latency(0.15)
    with _connect(proxy) as sock:
        started = time.perf_counter()
        assert _roundtrip(sock) == b"ping"
        # Two chunks (request and echo), each held 150 ms: a behavioural property of the mode.
        assert time.perf_counter() - started >= 0.3


def test_blackhole_accepts_and_never_answers(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock) == b"ping"
        proxy.blackhole()
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            _roundtrip(sock)
    with _connect(proxy) as fresh:
        fresh.settimeout(0.3)
        with pytest.raises(TimeoutError):
            _roundtrip(fresh)
    proxy.passthrough()
    with _connect(proxy) as sock:
        assert _roundtrip(sock) == b"ping"


def test_reset_resets_open_and_new_connections(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock) == b"ping"
        proxy.reset()
        with pytest.raises(ConnectionResetError):
            _roundtrip(sock)
    # A new connection is reset on accept: connect() or the first read sees it.
    with pytest.raises(ConnectionResetError), _connect(proxy) as fresh:
        _roundtrip(fresh)


def test_refuse_stops_listening_then_comes_back_on_the_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    with _connect(proxy) as sock:
        proxy.refuse()
        with pytest.raises(ConnectionResetError):
            _roundtrip(sock)
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy)
    proxy.passthrough()
    assert proxy.port == port
    with _connect(proxy) as sock:
        assert _roundtrip(sock) == b"ping"


def test_close_resets_open_connections_and_stops_listening(echo: tuple[str, int]) -> None:
    proxy = FaultProxy(*echo).start()
    sock = _connect(proxy)
    proxy.close()
    with sock:
        sock.settimeout(2.0)
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy)
