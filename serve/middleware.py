"""ASGI middleware around the whole app: the request body limit and request metrics.

Plain ASGI (not Starlette's BaseHTTPMiddleware) so the body is checked while it streams
in: a request announcing a too-large Content-Length is refused before any byte is read,
and a chunked one is stopped as soon as it passes the limit.
"""

from __future__ import annotations

import json
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.metrics import Metrics


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what we record if the app dies before answering
        too_large = f"the request body is larger than {self.max_body_bytes} bytes"

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413, too_large)  # FastAPI lets HTTPException through
            return message

        try:
            if _content_length(scope) > self.max_body_bytes:
                await _send_json(send_and_record_status, 413, "upload_too_large", too_large)
            else:
                await self.app(scope, receive_within_limit, send_and_record_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"  # template: bounded label set
            self.metrics.observe_request(endpoint, status, time.perf_counter() - started)


def _content_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # malformed: the server rejects it; the streaming check still applies
    return 0


async def _send_json(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
