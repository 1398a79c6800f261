"""FastAPI: the 503 and its headers are part of the OpenAPI schema of sheddable routes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from brownout.health.snapshot import SnapshotBoard
from brownout.middleware import BrownoutMiddleware
from brownout.middleware.fastapi import REJECTION_RESPONSES, document_rejections, features
from tests.middleware.conftest import client


def build(board: SnapshotBoard) -> FastAPI:
    app = FastAPI()

    @app.post("/summaries", dependencies=[features(requires=["write"], optional=["ai"])])
    def summarise() -> dict[str, Any]:
        return {}

    @app.get("/ping", dependencies=[features(requires=["health"])])
    def ping() -> dict[str, Any]:
        return {}

    app.add_middleware(BrownoutMiddleware, board=board)
    return app


async def test_openapi_documents_the_rejection_after_startup(board: SnapshotBoard) -> None:
    app = build(board)
    async with client(app) as http:
        schema = (await http.get("/openapi.json")).json()
    rejection = schema["paths"]["/summaries"]["post"]["responses"]["503"]
    assert set(rejection["headers"]) == {"Retry-After", "Brownout-Level", "Cache-Control"}
    assert "application/problem+json" in rejection["content"]
    # A route that only needs `health` is never shed.
    assert "503" not in schema["paths"]["/ping"]["get"]["responses"]


def test_document_rejections_without_serving(board: SnapshotBoard) -> None:
    app = build(board)
    assert document_rejections(app) == 1
    responses = app.openapi()["paths"]["/summaries"]["post"]["responses"]
    assert responses["503"]["description"] == REJECTION_RESPONSES[503]["description"]
    assert document_rejections(app) == 0
