"""The typed refusals every service function raises, one per kind of failure.

Owns: `ServiceError` and its kinds (not found, conflict, invalid input with every
problem listed, unavailable), each with the HTTP status and problem type an API
maps it to (RFC 9457), plus the two permission refusals of `actor`; `http_status`
and `problem_details` also map the account services' refusals. Must not:
carry internal exception text; every message is safe to show to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from admin.services.account_base import AccountError, UnknownObject
from admin.services.account_base import Conflict as AccountConflict
from admin.services.actor import Forbidden, OutOfScope
from admin.services.login import LoginRefused, SessionRefused
from admin.services.tokens import TokenRefused

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


def _kind_of(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, problem kind, title) of any refusal the services raise,
    including the account services' own (admin/services/account_base, login, tokens)."""
    if isinstance(exc, ServiceError):
        return exc.status, exc.kind, exc.title
    if isinstance(exc, OutOfScope | UnknownObject):
        return NotFound.status, NotFound.kind, NotFound.title
    if isinstance(exc, Forbidden):
        return 403, "forbidden", "Forbidden"
    if isinstance(exc, AccountConflict):
        return Conflict.status, Conflict.kind, Conflict.title
    if isinstance(exc, AccountError):
        return ServiceError.status, ServiceError.kind, ServiceError.title
    if isinstance(exc, LoginRefused | SessionRefused | TokenRefused):
        return 401, "unauthorized", "Not signed in"
    return 500, "internal", "Internal error"


def http_status(exc: BaseException) -> int:
    """The HTTP status an API answers for a service refusal (500 for anything else)."""
    return _kind_of(exc)[0]


def problem_details(exc: BaseException) -> dict[str, Any]:
    """An RFC 9457 problem object for a service refusal. Outside a scoped actor's
    subtree the answer is the plain not-found one, naming nothing; anything that
    is not a refusal is an internal error whose text is not shown."""
    status, kind, title = _kind_of(exc)
    if isinstance(exc, OutOfScope):
        detail = "not found"
    elif status == 500:
        detail = "internal error"
    else:
        detail = str(exc)
    body: dict[str, Any] = {
        "type": f"urn:barid:problem:{kind}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if isinstance(exc, ServiceError) and exc.problems:
        body["problems"] = list(exc.problems)
    return body
