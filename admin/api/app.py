"""The admin API's ASGI application (FastAPI): routers, problem handlers, headers, limits.

Owns: assembling the app the admin listener serves: the OpenAPI document at
`/api/v1/openapi.json` (generated from the routes; no interactive docs page,
which would need outside scripts), `/metrics` for an authenticated scraper,
security headers on every response (the web admin's pages under /admin get a
CSP that lets them load their own stylesheet and post their own forms), the
request-body limit (413 before the body is read past it). Must not: implement a
use case (routes call `admin.services`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

from fastapi import APIRouter, Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.api import problems
from admin.api.auth import Authenticator, current_actor
from admin.api.paging import Cursors
from admin.services.actor import Actor
from gateway import metrics

DEFAULT_MAX_BODY = 10 * 1024 * 1024

SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
# The web admin's pages (admin.web, under PAGE_PREFIX) load their own stylesheet and
# post their own forms; nothing inline, nothing from elsewhere.
PAGE_PREFIX = "/admin"
PAGE_CSP = (
    b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = [
    *(header for header in SECURITY_HEADERS if header[0] != b"content-security-policy"),
    (b"content-security-policy", PAGE_CSP),
]


def _headers_for(path: str) -> list[tuple[bytes, bytes]]:
    if path == PAGE_PREFIX or path.startswith(PAGE_PREFIX + "/"):
        return PAGE_HEADERS
    return SECURITY_HEADERS


class WhoAmI(BaseModel):
    account: str
    role: str
    agency: str | None


class _Limits:
    """ASGI middleware: security headers, and a cap on the request body (413)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        state = {"too_large": False, "started": False, "replaced": False}

        async def send_with_headers(message: Message) -> None:
            if state["too_large"]:
                # The app answered a body we cut short: answer 413 instead, once.
                if not state["started"] and not state["replaced"]:
                    state["replaced"] = True
                    await _too_large(send)
                return
            if message["type"] == "http.response.start":
                state["started"] = True
                added = _headers_for(scope.get("path", ""))
                message["headers"] = list(message.get("headers", [])) + added
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _too_large(send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    state["too_large"] = True
                    raise _BodyTooLarge
            return message

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, counting_receive, send_with_headers)
        if state["too_large"] and not state["started"] and not state["replaced"]:
            await _too_large(send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    body = (
        b'{"type":"urn:barid:problem:too-large","title":"Content Too Large",'
        b'"status":413,"detail":"the request body is larger than this listener accepts"}'
    )
    headers = [
        (b"content-type", problems.PROBLEM_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_admin_app(
    *,
    authenticator: Authenticator,
    cursor_key: bytes,
    routers: Sequence[APIRouter] = (),
    max_body: int = DEFAULT_MAX_BODY,
    version: str = "1",
    state: Mapping[str, object] | None = None,
    pages: Callable[[FastAPI], None] | None = None,
) -> ASGIApp:
    """The admin app: every router under /api/v1, problem details, the limits; `pages`
    installs the web admin's pages under PAGE_PREFIX (outside the API document)."""
    app = FastAPI(
        title="Barid admin API",
        version=version,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=problems.PROBLEM_RESPONSES,
    )
    app.state.authenticator = authenticator
    app.state.cursors = Cursors(cursor_key)
    for name, value in (state or {}).items():
        setattr(app.state, name, value)
    problems.install(app)

    @app.get("/api/v1/whoami", response_model=WhoAmI, tags=["session"])
    async def whoami(actor: Actor = Depends(current_actor)) -> WhoAmI:  # noqa: B008
        """The authenticated account, its role and scope."""
        return WhoAmI(account=actor.account, role=actor.role.value, agency=actor.agency)

    @app.get("/metrics", response_class=Response, tags=["operations"],
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})  # fmt: skip
    async def prometheus(actor: Actor = Depends(current_actor)) -> Response:  # noqa: B008
        """Prometheus metrics (bounded labels, never an address); any role may scrape
        them with its bearer token (DESIGN §10: nothing administrative is public)."""
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router, prefix="/api/v1")
    if pages is not None:
        pages(app)
    return _Limits(app, max_body)
