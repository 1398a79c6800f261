"""Refusing a websocket handshake.

With the ``websocket.http.response`` extension the client gets the same 503 response as an
HTTP request would; without it the only signal a client can read is a close code, so the
handshake is accepted and closed at once with 1013 (Try Again Later).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brownout.middleware.responses import Rejection

TRY_AGAIN_LATER = 1013


async def deny(
    response: ASGIApp, rejection: Rejection, scope: Scope, receive: Receive, send: Send
) -> None:
    if "websocket.http.response" in (scope.get("extensions") or {}):

        async def denial_send(message: Message) -> None:
            kind = message["type"]
            if kind.startswith("http.response."):
                message = {**message, "type": "websocket." + kind}
            await send(message)

        await response(scope, receive, denial_send)
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    reason = f"brownout: {rejection.feature} unavailable at level {rejection.level.label}"
    await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": reason})
