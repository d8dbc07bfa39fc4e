"""The HTTP listener's ASGI application (Starlette): /healthz and /metrics for now.

Owns: routes and their responses. Must not: block the loop or show internal
exception text; later issues add /api/v1, /v/ and the admin pages here.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics

log = logging.getLogger("barid.http")
HEALTH_TIMEOUT_SECONDS = 2.0


def build_app(engine: AsyncEngine) -> Starlette:
    """The app for one gateway; `engine` is used by /healthz to probe the database."""

    async def healthz(_request: Request) -> Response:
        import asyncio

        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception:
            log.warning("health check: database unavailable", exc_info=True)
            metrics.HEALTH_CHECKS.labels("unavailable").inc()
            return JSONResponse({"status": "unavailable", "database": "unavailable"}, 503)
        metrics.HEALTH_CHECKS.labels("ok").inc()
        return JSONResponse({"status": "ok", "database": "ok"})

    async def prometheus(_request: Request) -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return PlainTextResponse("Not found / غير موجود\n", status_code=404)

    async def server_error(_request: Request, _exc: Exception) -> Response:
        return PlainTextResponse("Internal error / خطأ داخلي\n", status_code=500)

    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/metrics", prometheus)],
        exception_handlers={404: not_found, 500: server_error},
        middleware=[Middleware(Measured)],
    )
    return app


KNOWN_ROUTES = frozenset({"/healthz", "/metrics"})


class Measured:
    """ASGI middleware counting requests by route template (bounded) and status class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in KNOWN_ROUTES else "other"
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics.HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
            metrics.HTTP_REQUESTS.labels(route, f"{status // 100}xx").inc()
