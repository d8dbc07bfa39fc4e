"""The service refusals as RFC 9457 problem objects and HTTP statuses."""

from __future__ import annotations

import pytest

from admin.services.account_base import AccountError, UnknownObject
from admin.services.account_base import Conflict as AccountConflict
from admin.services.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    OutOfScope,
    Unavailable,
    http_status,
    problem_details,
)
from admin.services.login import SessionRefused
from admin.services.tokens import TokenRefused


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (NotFound("unknown agency 'X'"), 404, "not-found"),
        (OutOfScope("not found"), 404, "not-found"),
        (Forbidden("role registrar may not change directory"), 403, "forbidden"),
        (Conflict("agency MOH already exists"), 409, "conflict"),
        (
            InvalidInput("f.csv: 2 bad row(s)", problems=["line 2: a", "line 3: b"]),
            422,
            "invalid-input",
        ),
        (Unavailable("the database is not reachable"), 503, "unavailable"),
        (RuntimeError("secret internals"), 500, "internal"),
        (UnknownObject("no grant"), 404, "not-found"),
        (AccountConflict("already granted"), 409, "conflict"),
        (AccountError("bad role"), 400, "bad-request"),
        (TokenRefused("expired"), 401, "unauthorized"),
        (SessionRefused("expired"), 401, "unauthorized"),
    ],
)
def test_problem_details(exc: Exception, status: int, kind: str) -> None:
    body = problem_details(exc)
    assert http_status(exc) == status == body["status"]
    assert body["type"] == f"urn:barid:problem:{kind}" and body["title"]
    assert "secret" not in body["detail"]
    if isinstance(exc, InvalidInput):
        assert body["problems"] == ["line 2: a", "line 3: b"]


def test_outside_the_subtree_reads_as_plain_not_found() -> None:
    assert problem_details(OutOfScope("not found"))["detail"] == "not found"
