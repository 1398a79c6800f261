"""A local OpenAI-compatible API (``/v1/models``, ``/v1/chat/completions``) that can be
switched into rate-limit mode, where every call answers 429 like the real API does."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "demo-model"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.rstrip("/") != "/v1/models":
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        elif not self._rate_limited():
            model = {"id": MODEL, "object": "model", "created": 0, "owned_by": "brownout-demo"}
            self._send(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        if self._rate_limited():
            return
        self.server.calls += 1
        prompt = str(request.get("messages", [{}])[-1].get("content", ""))
        text = f"A demo answer to: {prompt[:60]}"
        self._send(
            200,
            {
                "id": f"chatcmpl-{self.server.calls}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", MODEL),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            },
        )

    def _rate_limited(self) -> bool:
        if not self.server.rate_limited:
            return False
        body = {
            "error": {
                "message": "Rate limit reached (brownout demo)",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        }
        self._send(429, body, {"Retry-After": "1"})
        return True

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the dashboard owns the terminal


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    rate_limited = False
    calls = 0


class OpenAIStandIn:
    description = "local OpenAI-compatible server"

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-openai", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self._thread.start()

    def rate_limit(self, on: bool) -> None:
        self._server.rate_limited = on

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
