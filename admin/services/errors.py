"""The typed refusals every service function raises, one per kind of failure.

Owns: `ServiceError` and its kinds (not found, conflict, invalid input with every
problem listed, unavailable), each with the HTTP status and problem type an API
maps it to (RFC 9457), plus the two permission refusals of `actor`. Must not:
carry internal exception text; every message is safe to show to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from admin.services.actor import Forbidden, OutOfScope

__all__ = [
    "SERVICE_ERRORS",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "OutOfScope",
    "ServiceError",
    "Unavailable",
    "http_status",
    "problem_details",
]


class ServiceError(Exception):
    """A refusal safe to show: `problems` lists every problem found (one line each),
    `details` holds machine-readable facts for JSON output."""

    status: ClassVar[int] = 400
    kind: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        message: str,
        *,
        problems: Sequence[str] = (),
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.problems = list(problems)
        self.details = dict(details or {})


class NotFound(ServiceError):
    status = 404
    kind = "not-found"
    title = "Not found"


class Conflict(ServiceError):
    """The change clashes with the current state (exists already, wrong state)."""

    status = 409
    kind = "conflict"
    title = "Conflict with the current state"


class InvalidInput(ServiceError):
    """The input is wrong; `problems` lists every problem, and nothing was changed."""

    status = 422
    kind = "invalid-input"
    title = "Invalid input"


class Unavailable(ServiceError):
    """A resource the use case needs (the database, the running gateway) cannot be used."""

    status = 503
    kind = "unavailable"
    title = "Temporarily unavailable"


SERVICE_ERRORS = (ServiceError, OutOfScope, Forbidden)


def http_status(exc: BaseException) -> int:
    """The HTTP status an API answers for a service refusal (500 for anything else)."""
    if isinstance(exc, ServiceError):
        return exc.status
    if isinstance(exc, OutOfScope):
        return 404
    if isinstance(exc, Forbidden):
        return 403
    return 500


def problem_details(exc: BaseException) -> dict[str, Any]:
    """An RFC 9457 problem object for a service refusal. Outside a scoped actor's
    subtree the answer is the plain not-found one, naming nothing."""
    status = http_status(exc)
    if isinstance(exc, ServiceError):
        kind, title, detail = exc.kind, exc.title, str(exc)
    elif isinstance(exc, OutOfScope):
        kind, title, detail = "not-found", NotFound.title, "not found"
    elif isinstance(exc, Forbidden):
        kind, title, detail = "forbidden", "Forbidden", str(exc)
    else:
        kind, title, detail = "internal", "Internal error", "internal error"
    body: dict[str, Any] = {
        "type": f"urn:barid:problem:{kind}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if isinstance(exc, ServiceError) and exc.problems:
        body["problems"] = list(exc.problems)
    return body
