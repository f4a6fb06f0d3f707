"""ASGI middleware: the request size limit and the access log (with request metrics)."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from api.metrics import ServiceMetrics

log = logging.getLogger("api.access")


def _too_large(limit: int) -> str:
    return (f"the request body exceeds this server's limit of {limit:,} bytes "
            f"(MAX_REQUEST_BYTES); upload large tables once with POST /v1/datasets")


def route_label(route: Any) -> str:
    """A bounded label for a matched route: its operation id (tag-name), or "unmatched"
    (never the raw path, whose ids would make one time series per job)."""
    if route is None:
        return "unmatched"
    tags = getattr(route, "tags", None)
    name = getattr(route, "name", None) or "unnamed"
    return f"{tags[0]}-{name}" if tags else name


class BodySizeLimit:
    """413 for bodies over `limit` bytes: at once when Content-Length says so, else as soon
    as the streamed body passes the limit (chunked uploads declare no length)."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = problem(413, "too-large", "Request too large", _too_large(self.limit))
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI re-raises HTTPExceptions met while reading a body as they are.
                    raise HTTPException(413, _too_large(self.limit))
            return message

        await self.app(scope, limited, send)


class AccessLog:
    """One log line and one metrics sample per request: method, route, status, time.
    No query string, headers or body: they may carry keys or customer data."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = time.perf_counter() - started
            route = route_label(scope.get("route"))
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.request_seconds.labels(scope["method"], route).observe(seconds)
            log.info("request", extra={
                "method": scope["method"], "path": scope["path"], "route": route,
                "status": status, "ms": round(seconds * 1000, 1),
                "tenant_id": scope.get("state", {}).get("tenant_id")})
