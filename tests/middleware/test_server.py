"""Through a real uvicorn server: streaming across a level change, websocket denial."""

from __future__ import annotations

import threading
from typing import Any

import anyio.to_thread
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from brownout.breaker import CircuitOpenError
from brownout.health.snapshot import SnapshotBoard
from brownout.levels import Level
from brownout.middleware import BrownoutMiddleware, features
from tests.middleware.conftest import UvicornServer, publish


def streaming_app(board: SnapshotBoard, resume: threading.Event) -> Starlette:
    async def chunks() -> Any:
        yield b"chunk-0\n"
        # Wait (off the event loop) until the test has moved the level.
        await anyio.to_thread.run_sync(resume.wait, 10)
        for index in range(1, 50):
            yield f"chunk-{index}\n".encode()

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(routes=[Route("/stream", stream)])
    app.add_middleware(BrownoutMiddleware, board=board)
    return app


def test_a_started_stream_is_not_cut_when_the_level_drops(
    board: SnapshotBoard, serve: type[UvicornServer]
) -> None:
    resume = threading.Event()
    with serve(streaming_app(board, resume)) as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/readyz").status_code == 200
        with http.stream("GET", "/stream") as response:
            lines = response.iter_lines()
            assert next(lines) == "chunk-0"
            publish(board, Level.EMERGENCY)
            assert http.get("/stream").status_code == 503  # new requests see the level
            resume.set()
            rest = list(lines)
        assert response.status_code == 200
        assert rest == [f"chunk-{index}" for index in range(1, 50)]


def test_an_open_circuit_after_the_stream_started_is_not_rewritten(
    board: SnapshotBoard, serve: type[UvicornServer]
) -> None:
    async def chunks() -> Any:
        yield b"first\n"
        raise CircuitOpenError("cache-1", "cache", 5.0)

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = Starlette(routes=[Route("/stream", stream)])
    app.add_middleware(BrownoutMiddleware, board=board)
    with serve(app) as server, httpx.Client(base_url=server.url) as http:
        with http.stream("GET", "/stream") as response:
            assert response.status_code == 200
            chunks_seen: list[bytes] = []
            with pytest.raises(httpx.RemoteProtocolError):  # the server drops it, unfinished
                chunks_seen.extend(response.iter_raw())
        assert b"".join(chunks_seen) == b"first\n"
        assert http.get("/readyz").status_code == 200  # the server is fine


def without_denial_extension(app: Any) -> Any:
    """What a server without ``websocket.http.response`` would hand the app."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope = {**scope, "extensions": {}}
        await app(scope, receive, send)

    return wrapped


def websocket_app(board: SnapshotBoard) -> Starlette:
    @features(requires=["ai"])
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"hello at {websocket.state.brownout.level.label}")
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/chat", chat)])
    app.add_middleware(BrownoutMiddleware, board=board)
    return app


@pytest.mark.parametrize("level", [Level.OPTIMAL, Level.DEGRADED])
def test_websocket_served_while_its_feature_is_on(
    board: SnapshotBoard, serve: type[UvicornServer], level: Level
) -> None:
    publish(board, level)
    with (
        serve(websocket_app(board)) as server,
        connect(f"ws://127.0.0.1:{server.port}/chat", open_timeout=10) as websocket,
    ):
        assert websocket.recv(timeout=10) == f"hello at {level.label}"


def test_websocket_denied_with_a_503_response(
    board: SnapshotBoard, serve: type[UvicornServer]
) -> None:
    publish(board, Level.LIMITED, retry_after=12.0)
    with serve(websocket_app(board)) as server, pytest.raises(InvalidStatus) as denied:
        connect(f"ws://127.0.0.1:{server.port}/chat", open_timeout=10)
    response = denied.value.response
    assert response.status_code == 503
    assert response.headers["Brownout-Level"] == "limited"
    assert 12 <= int(response.headers["Retry-After"]) <= 15
    assert response.headers["Content-Type"] == "application/problem+json"
    assert b'"feature": "ai"' in response.body


def test_websocket_closed_with_1013_without_the_denial_extension(
    board: SnapshotBoard, serve: type[UvicornServer]
) -> None:
    publish(board, Level.LIMITED)
    with (
        serve(without_denial_extension(websocket_app(board))) as server,
        connect(f"ws://127.0.0.1:{server.port}/chat", open_timeout=10) as websocket,
        pytest.raises(ConnectionClosedError) as closed,
    ):
        websocket.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1013
    assert "ai" in closed.value.rcvd.reason
