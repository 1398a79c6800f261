"""The retail service as the demo runs it: ``python -m examples.demo.serve PORT``.

Configured from ``RETAIL_*`` variables like any deployment, with the demo's fast settings,
plus one demo-only endpoint outside the app, ``POST /_demo/database-latency?seconds=S``
(admin key required), that slows SQLite statements down (see ``database_latency``).
"""

from __future__ import annotations

import hmac
import json
import sys
from urllib.parse import parse_qs

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from examples.demo import tuning
from examples.demo.database_latency import SQLiteLatency
from examples.retail import RetailConfig, create_app

FAULT_PATH = "/_demo/database-latency"


def build() -> ASGIApp:
    config = RetailConfig.from_env(
        breaker=tuning.BREAKER,
        brownout=tuning.BROWNOUT,
        timeout_seconds=tuning.TIMEOUT_SECONDS,
    )
    app = create_app(config)
    latency = SQLiteLatency()
    if config.database_url.startswith("sqlite"):
        latency.attach(app.state.retail.clients.engine)
    key = (config.admin_api_key or "").encode()

    async def demo(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != FAULT_PATH:
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        allowed = bool(key) and hmac.compare_digest(headers.get(b"x-api-key", b""), key)
        status = 401
        body: dict[str, object] = {"detail": "admin key required"}
        if allowed:
            query = parse_qs(scope["query_string"].decode())
            try:
                latency.seconds = max(0.0, float(query.get("seconds", ["0"])[0]))
                status, body = 200, {"seconds": latency.seconds}
            except ValueError:
                status, body = 422, {"detail": "seconds must be a number"}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return demo


def main() -> None:
    port = int(sys.argv[1])
    uvicorn.run(build(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
