"""A private ``redis-server`` the demo can kill and bring back on the same port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from examples.demo.ports import free_port, wait_for_port


class RedisProcess:
    description = "redis-server (local binary)"

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="brownout-demo-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def find(cls) -> RedisProcess | None:
        binary = shutil.which("redis-server")
        return None if binary is None else cls(binary)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, 10, "redis-server")

    def kill(self) -> None:
        """SIGKILL: the cache dies the way a crashed node does, no goodbye."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)
