"""Local TCP ports: finding a free one, waiting for a server to listen on one."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float, what: str, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while not listening(port, host):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} is not listening on {host}:{port} after {timeout:.0f} s")
        time.sleep(0.05)
