"""Errors as RFC 9457 problem details: `application/problem+json`, never a traceback.

Owns: the `Problem` body, the mapping of service errors to status codes (out of
scope -> 404 so scope never reveals existence; forbidden -> 403) and the
handlers installed on the admin app. An unexpected exception becomes a 500
problem with a fixed text; its details go to the log, never to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from admin.services.actor import Forbidden, OutOfScope
from admin.services.errors import ServiceError, problem_details

log = logging.getLogger("barid.admin.api")

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "urn:barid:problem:"  # the scheme of admin.services.errors too


class Problem(BaseModel):
    """RFC 9457 §3.1 members, plus `errors` for every problem of a bad input."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


_PROBLEM_SCHEMA = {"schema": {"$ref": "#/components/schemas/Problem"}}
# Every route may answer these, as problem details (documented once, on the app).
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": why, "content": {PROBLEM_TYPE: _PROBLEM_SCHEMA}}
    for status, why in [
        (400, "Bad request (e.g. a cursor that is not valid)"),
        (401, "No valid credentials"),
        (403, "The role may not do this, or a cookie session sent no CSRF token"),
        (404, "No such object, or one outside the caller's agency scope"),
        (409, "Conflicts with the current state"),
        (413, "The request body is too large"),
        (422, "The input is not valid: every problem is listed"),
        (429, "Too many attempts"),
        (503, "A store is unavailable: try again later"),
    ]
}


class ApiProblem(Exception):
    """Raised by routes for a refusal with a clear reason; nothing was changed."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.headers = headers
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = errors


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str | None = None,
    *,
    kind: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=TYPE_BASE + kind if kind else "about:blank",
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_TYPE,
        headers=headers,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        out.append({"field": where, "message": str(error.get("msg", "invalid"))})
    return out


def _structured(exc: ServiceError) -> list[dict[str, Any]]:
    """Problems a service gave as objects (e.g. a policy's, each with its `line`)."""
    found = exc.details.get("problems")
    if isinstance(found, list) and all(isinstance(item, dict) for item in found):
        return [dict(item) for item in found]
    return []


def install(app: FastAPI) -> None:
    """Install the problem-details handlers on the admin app."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            request,
            exc.status,
            exc.title,
            exc.detail,
            kind=exc.kind,
            errors=exc.errors,
            headers=exc.headers,
        )

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        body = problem_details(exc)
        errors = _structured(exc) or [{"message": line} for line in body.get("problems", [])]
        return problem_response(
            request,
            body["status"],
            body["title"],
            body["detail"],
            kind=body["type"].removeprefix(TYPE_BASE),
            errors=errors or None,
        )

    @app.exception_handler(OutOfScope)
    async def _out_of_scope(request: Request, exc: OutOfScope) -> JSONResponse:
        return problem_response(request, 404, "Not Found", "no such object", kind="not-found")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return problem_response(request, 403, "Forbidden", str(exc), kind="forbidden")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            request,
            422,
            "Unprocessable Content",
            "the request is not valid; see errors",
            kind="invalid-request",
            errors=_validation_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(
            request, exc.status_code, title, detail, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("admin api: unexpected error", exc_info=exc)
        return problem_response(
            request, 500, "Internal Server Error", "the request could not be completed"
        )
