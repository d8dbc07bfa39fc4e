"""The public HTTP listener's ASGI application (Starlette): /healthz and, given a
verification service, the public verification API (/api/v1/verify/..., the token
keys at /.well-known/barid/keys.json, /api/v1/openapi.json) and the public
verification pages (/v/<token>, /v/check; gateway.verification.page) and, given
the client set-up, the mail clients' configuration (gateway.http.clientconfig.routes).

Owns: routes and their responses. Must not: block the loop, show internal
exception text, put request text (tokens) in metric labels, or serve anything
administrative: /metrics, the admin API and pages are on the admin listener
(admin.api.app), DESIGN §10.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics
from gateway.http.clientconfig.routes import (
    ClientSetup,
    FoldedPaths,
    client_config_routes,
    route_label,
)
from gateway.verification.openapi import openapi_document
from gateway.verification.page import PAGE_CHECK_ROUTE, PAGE_PREFIX, PAGE_TOKEN_ROUTE, page_routes
from gateway.verification.radar import TOO_MANY, Radar
from gateway.verification.service import (
    MAX_DOCUMENT_BYTES,
    VerificationService,
    VerificationUnavailable,
)
from gateway.verification.upload import UploadProblem, multipart_upload
from keys.tokens import MAX_TOKEN_CHARS, TokenProblem

log = logging.getLogger("barid.http")
HEALTH_TIMEOUT_SECONDS = 2.0
VERIFY_PREFIX = "/api/v1/verify/"
VERIFY_TOKEN_ROUTE = VERIFY_PREFIX + "{token}"
VERIFY_DOCUMENT_ROUTE = VERIFY_PREFIX + "document"
KEYS_ROUTE = "/.well-known/barid/keys.json"
OPENAPI_ROUTE = "/api/v1/openapi.json"
KEYS_CACHE_CONTROL = "public, max-age=300"


def build_app(
    engine: AsyncEngine,
    *,
    verification: VerificationService | None = None,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
    radar: Radar | None = None,
    client_setup: ClientSetup | None = None,
) -> Starlette:
    """The app for one gateway; `engine` is used by /healthz to probe the database.

    With `verification`, the public verification API is served too, its lookups
    watched by `radar` (gateway/verification/radar.py; a default one, without
    audit alerts, if not given), also reachable as `app.state.verify_radar`.
    """
    if verification is not None and radar is None:
        radar = Radar()

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

    async def not_found(request: Request, _exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return json_error("not found", 404)
        return PlainTextResponse("Not found / غير موجود\n", status_code=404)

    async def server_error(request: Request, _exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return json_error("internal error", 500)
        return PlainTextResponse("Internal error / خطأ داخلي\n", status_code=500)

    routes = [Route("/healthz", healthz)]
    if verification is not None:
        assert radar is not None
        routes.extend(verification_routes(verification, max_document_bytes, radar))
        routes.extend(page_routes(verification, max_document_bytes, radar, client_address))
    if client_setup is not None:
        routes.extend(client_config_routes(client_setup))
    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 500: server_error},
        middleware=[Middleware(Measured), Middleware(FoldedPaths)],
    )
    app.state.verify_radar = radar
    return app


def json_error(reason: str, status: int) -> Response:
    """`{"error": reason}`: a short fixed reason, never exception text."""
    return JSONResponse({"error": reason}, status, headers={"Cache-Control": "no-store"})


def verification_routes(
    service: VerificationService, max_document_bytes: int, radar: Radar | None = None
) -> list[Route]:
    """The public verification API (docs/CONTRACT.md §6); see gateway/verification/openapi.py.

    Every lookup passes `radar` (per-client throttling, metrics, spike alerts).
    """
    radar = radar or Radar()

    async def verify_token(request: Request) -> Response:
        client = client_address(request)
        wait = await radar.check(client, "token")
        if wait is not None:
            return too_many(wait)
        token = str(request.path_params["token"])
        if len(token) > MAX_TOKEN_CHARS:  # refused before any work
            wait = await radar.record(client, "token", "forged")
            return too_many(wait) if wait is not None else _verdict_response({**_FORGED_TOO_LONG})
        try:
            verdict = await service.by_token(token)
        except VerificationUnavailable:
            return json_error("verification unavailable, try again later", 503)
        registries = [verdict.registry] if verdict.registry else []
        wait = await radar.record(client, "token", verdict.status, registries)
        if wait is not None:
            return too_many(wait)
        return _verdict_response(verdict.as_dict())

    async def verify_document(request: Request) -> Response:
        client = client_address(request)
        wait = await radar.check(client, "document")
        if wait is not None:
            return too_many(wait)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_document_bytes:
            return json_error("document too large", 413)
        content_type = request.headers.get("content-type", "").lower()
        if content_type.startswith("multipart/form-data"):
            digest = await _multipart_digest(request, max_document_bytes)
        else:
            digest = await _raw_digest(request, max_document_bytes)
        if isinstance(digest, Response):
            return digest
        try:
            verdict = await service.by_sha256(digest)
        except VerificationUnavailable:
            return json_error("verification unavailable, try again later", 503)
        registries = [m.registry for m in verdict.matches]
        wait = await radar.record(client, "document", verdict.status, registries)
        if wait is not None:
            return too_many(wait)
        return _verdict_response(verdict.as_dict())

    async def token_keys(_request: Request) -> Response:
        return JSONResponse(
            {"keys": service.published_keys()},
            headers={"Cache-Control": KEYS_CACHE_CONTROL, "Access-Control-Allow-Origin": "*"},
        )

    document = openapi_document()

    async def openapi(_request: Request) -> Response:
        return JSONResponse(document, headers={"Cache-Control": KEYS_CACHE_CONTROL})

    return [
        # The document route comes first so that "document" is never taken for a token.
        Route(VERIFY_DOCUMENT_ROUTE, verify_document, methods=["POST"]),
        Route(VERIFY_TOKEN_ROUTE, verify_token, methods=["GET"]),
        Route(KEYS_ROUTE, token_keys, methods=["GET"]),
        Route(OPENAPI_ROUTE, openapi, methods=["GET"]),
    ]


_FORGED_TOO_LONG: dict[str, Any] = {
    "status": "forged",
    "problem": TokenProblem.MALFORMED.value,
    "registry": None,
    "agency": None,
    "issued_at": None,
    "sender": None,
    "documents": [],
    "revoked": None,
    "key_id": None,
}


def client_address(request: Request) -> str:
    """The ASGI client host the radar counts by ("unknown" when the server gives none)."""
    return request.client.host if request.client is not None else "unknown"


def too_many(retry_after: int) -> Response:
    """429 with Retry-After (seconds): the radar refused this lookup."""
    return JSONResponse(
        {"error": TOO_MANY},
        429,
        headers={"Cache-Control": "no-store", "Retry-After": str(retry_after)},
    )


def _verdict_response(body: dict[str, Any]) -> Response:
    # The status may change (revocation): never cached; readable by any web page.
    return JSONResponse(
        body, headers={"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"}
    )


async def _raw_digest(request: Request, limit: int) -> str | Response:
    """SHA-256 (hex) of the request body, hashed as it arrives (never held whole)."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return json_error("document too large", 413)
        digest.update(chunk)
    if size == 0:
        return json_error("empty document", 400)
    return digest.hexdigest()


async def _multipart_digest(request: Request, limit: int) -> str | Response:
    """SHA-256 (hex) of the `file` field of a multipart/form-data body (the whole
    body, framing included, must stay within `limit`; see verification.upload)."""
    upload = await multipart_upload(request, limit)
    if upload is UploadProblem.TOO_LARGE:
        return json_error("document too large", 413)
    if isinstance(upload, UploadProblem):
        return json_error("malformed multipart body", 400)
    if not upload.has_file:
        return json_error("multipart body needs a file field named 'file'", 400)
    if upload.sha256 is None:
        return json_error("empty document", 400)
    return upload.sha256


KNOWN_ROUTES = frozenset(
    {"/healthz", VERIFY_DOCUMENT_ROUTE, KEYS_ROUTE, OPENAPI_ROUTE, PAGE_CHECK_ROUTE}
)


def route_template(path: str) -> str:
    """The metric label for a request path: a known route or template, else "other".

    Bounded: request text (a token) never becomes a label.
    """
    if path in KNOWN_ROUTES:
        return path
    client_route = route_label(path)
    if client_route is not None:
        return client_route
    if path.startswith(VERIFY_PREFIX) and "/" not in path[len(VERIFY_PREFIX) :]:
        return VERIFY_TOKEN_ROUTE
    if path.startswith(PAGE_PREFIX) and "/" not in path[len(PAGE_PREFIX) :]:
        return PAGE_TOKEN_ROUTE
    return "other"


class Measured:
    """ASGI middleware counting requests by route template (bounded) and status class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = route_template(path)
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
