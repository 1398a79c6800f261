"""Doubles of the middleware's collaborators, app builders and a real uvicorn server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message

from brownout.health.snapshot import Snapshot, SnapshotBoard
from brownout.levels import Level
from brownout.testing import FakeClock
from tests.servers import free_port

ADMIN_KEY = "s3cret-admin-key-0123456789"


def publish(board: SnapshotBoard, level: Level, **fields: Any) -> Snapshot:
    snapshot = Snapshot(level=level, policy=board.matrix.policy(level), **fields)
    board.publish(snapshot)
    return snapshot


class FakeControl:
    """A stand-in for the health aggregator: pins levels with a TTL on a fake clock and
    publishes snapshots to the board, as the real one does."""

    def __init__(self, board: SnapshotBoard, clock: FakeClock) -> None:
        self.board = board
        self.clock = clock
        self.base = Level.OPTIMAL
        self.pinned: tuple[Level, float, str] | None = None
        self.started = 0
        self.stopped = 0

    async def start(self) -> None:
        self.started += 1

    async def stop(self) -> None:
        self.stopped += 1

    def force_level(self, level: Level, ttl: float, reason: str) -> None:
        self.pinned = (level, self.clock() + ttl, reason)
        self.evaluate()

    def clear_overrides(self) -> None:
        self.pinned = None
        self.evaluate()

    def evaluate(self) -> None:
        """One aggregator tick: expire the pin when its time is up, publish."""
        if self.pinned is not None and self.clock() >= self.pinned[1]:
            self.pinned = None
        if self.pinned is None:
            publish(self.board, self.base, reason="evaluated")
        else:
            level, _, reason = self.pinned
            publish(self.board, level, reason="forced", override=reason)

    def status(self) -> Mapping[str, Any]:
        return {"pinned": None if self.pinned is None else self.pinned[0].label}


@pytest.fixture
def board() -> SnapshotBoard:
    return SnapshotBoard()


@pytest.fixture
def control(board: SnapshotBoard, clock: FakeClock) -> FakeControl:
    return FakeControl(board, clock)


def client(app: ASGIApp, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=kwargs.pop("peer", ("10.0.0.1", 5000)))
    return httpx.AsyncClient(transport=transport, base_url="http://test", **kwargs)


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[list[Message]]:
    """Run the app's lifespan startup, yield the messages it sent, then shut it down."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []
    changed = asyncio.Event()

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        sent.append(message)
        changed.set()

    async def wait_for(*kinds: str) -> None:
        while not any(message["type"] in kinds for message in sent):
            changed.clear()
            await asyncio.wait_for(changed.wait(), 10)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    await inbox.put({"type": "lifespan.startup"})
    await wait_for("lifespan.startup.complete", "lifespan.startup.failed")
    try:
        yield sent
    finally:
        if not task.done():
            await inbox.put({"type": "lifespan.shutdown"})
            await wait_for("lifespan.shutdown.complete", "lifespan.shutdown.failed")
        await asyncio.wait_for(task, 10)


class UvicornServer:
    """``app`` served by uvicorn on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, lifespan="on", ws="websockets-sansio",
            log_level="warning",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UvicornServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture
def serve() -> Iterator[type[UvicornServer]]:
    return UvicornServer
