"""The public listener's client-configuration routes: Thunderbird autoconfig,
Outlook autodiscover (POX; its path in any letter case) and the Apple profile.

Owns: reading the request (query, Host, a size-bounded body), the status codes
(400 bad input, 404 a domain no agency uses, 413 too large) and the response
headers. Must not: build the documents (thunderbird, outlook, apple do), tell a
known address from an unknown one, log addresses, or answer 5xx for bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http.clientconfig import apple, outlook, thunderbird
from gateway.http.clientconfig.model import (
    AddressError,
    MailDomain,
    MailEndpoints,
    clean_domain,
    domain_of,
    find_domain,
    parse_address,
)
from policies.directory import DirectorySnapshot

AUTOCONFIG_ROUTE = "/mail/config-v1.1.xml"
AUTOCONFIG_WELL_KNOWN_ROUTE = "/.well-known/autoconfig/mail/config-v1.1.xml"
AUTODISCOVER_ROUTE = "/autodiscover/autodiscover.xml"
APPLE_ROUTE = "/.well-known/barid/apple.mobileconfig"
CLIENT_ROUTES = frozenset(
    {AUTOCONFIG_ROUTE, AUTOCONFIG_WELL_KNOWN_ROUTE, AUTODISCOVER_ROUTE, APPLE_ROUTE}
)
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

BAD_ADDRESS = "not a valid email address (expected local@domain) / عنوان البريد غير صالح"
NO_ADDRESS = "the emailaddress parameter is required / يلزم ذكر عنوان البريد"
NOT_FOUND = "Not found / غير موجود"
TOO_LARGE = "request too large / الطلب أكبر من المسموح"
INVALID_REQUEST_AR = "طلب غير صالح"
UNAVAILABLE = "not available yet, try again later / غير متاح الآن، أعد المحاولة لاحقاً"


@dataclass(frozen=True, slots=True)
class ClientSetup:
    """What the routes answer from: the endpoints and the current directory snapshot."""

    endpoints: MailEndpoints
    snapshot: Callable[[], DirectorySnapshot | None]


def client_config_routes(setup: ClientSetup) -> list[Route]:
    async def autoconfig(request: Request) -> Response:
        given = request.query_params.get("emailaddress")
        if given:
            try:
                domain_name: str | None = domain_of(parse_address(given))
            except AddressError:
                return _text(BAD_ADDRESS, 400)
        else:  # Thunderbird's well-known lookup names no address: the Host names the domain
            domain_name = _host_domain(request)
        found = _lookup(setup, domain_name)
        if isinstance(found, Response):
            return found
        body = thunderbird.autoconfig_xml(found, setup.endpoints)
        return Response(body, media_type=thunderbird.CONTENT_TYPE, headers=HEADERS)

    async def apple_profile(request: Request) -> Response:
        given = request.query_params.get("emailaddress")
        if not given:
            return _text(NO_ADDRESS, 400)
        try:
            address = parse_address(given)
        except AddressError:
            return _text(BAD_ADDRESS, 400)
        found = _lookup(setup, domain_of(address))
        if isinstance(found, Response):
            return found
        body = apple.mobileconfig(address, found, setup.endpoints)
        headers = {**HEADERS, "Content-Disposition": 'attachment; filename="barid.mobileconfig"'}
        return Response(body, media_type=apple.CONTENT_TYPE, headers=headers)

    async def autodiscover(request: Request) -> Response:
        body = await _bounded_body(request, outlook.MAX_REQUEST_BYTES)
        if body is None:
            return _xml_error(outlook.ERROR_INVALID_REQUEST, TOO_LARGE, 413)
        try:
            address = parse_address(outlook.parse_request(body))
        except outlook.AutodiscoverRequestError as exc:
            reason = f"Invalid Request: {exc} / {INVALID_REQUEST_AR}"
            return _xml_error(outlook.ERROR_INVALID_REQUEST, reason, 400)
        except AddressError:
            return _xml_error(outlook.ERROR_INVALID_REQUEST, BAD_ADDRESS, 400)
        found = _lookup(setup, domain_of(address))
        if isinstance(found, Response):
            return _xml_error(outlook.ERROR_NO_ACCOUNT, NOT_FOUND, found.status_code)
        answer = outlook.response_xml(address, setup.endpoints)
        return Response(answer, media_type=outlook.CONTENT_TYPE, headers=HEADERS)

    return [
        Route(AUTOCONFIG_ROUTE, autoconfig, methods=["GET"]),
        Route(AUTOCONFIG_WELL_KNOWN_ROUTE, autoconfig, methods=["GET"]),
        Route(AUTODISCOVER_ROUTE, autodiscover, methods=["POST"]),
        Route(APPLE_ROUTE, apple_profile, methods=["GET"]),
    ]


def _lookup(setup: ClientSetup, domain: str | None) -> MailDomain | Response:
    snapshot = setup.snapshot()
    if snapshot is None:
        return _text(UNAVAILABLE, 503)
    found = find_domain(snapshot, domain) if domain else None
    return found if found is not None else _text(NOT_FOUND, 404)


def _host_domain(request: Request) -> str | None:
    """The domain a Host header names (`autoconfig.` dropped), or None."""
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):  # an IP literal names no mail domain
        return None
    name = host.split(":", 1)[0].removeprefix("autoconfig.")
    return clean_domain(name)


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _text(message: str, status: int) -> Response:
    return PlainTextResponse(message + "\n", status_code=status, headers=HEADERS)


def _xml_error(code: str, message: str, status: int) -> Response:
    return Response(
        outlook.error_xml(code, message),
        status_code=status,
        media_type=outlook.CONTENT_TYPE,
        headers=HEADERS,
    )


def route_label(path: str) -> str | None:
    """The metric label of a client-configuration path (autodiscover in any case)."""
    if path in CLIENT_ROUTES:
        return path
    if path.lower() == AUTODISCOVER_ROUTE:
        return AUTODISCOVER_ROUTE
    return None


class FoldedPaths:
    """ASGI middleware: the autodiscover path in any letter case reaches its route
    (Outlook asks for /Autodiscover/Autodiscover.xml)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != AUTODISCOVER_ROUTE and path.lower() == AUTODISCOVER_ROUTE:
            scope = {**scope, "path": AUTODISCOVER_ROUTE, "raw_path": AUTODISCOVER_ROUTE.encode()}
        await self.app(scope, receive, send)
