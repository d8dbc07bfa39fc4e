"""Who is calling the admin API: a bearer token, or a signed-in session cookie.

Owns: turning a request into an `Actor` through an `Authenticator` (the
accounts service), and the CSRF rule for cookie sessions: a request that
changes something (any method but GET/HEAD/OPTIONS) must carry the session's
CSRF secret in the `X-CSRF-Token` header. Tokens in the Authorization header
are not sent by browsers on their own, so they need no CSRF header.

Failure behaviour: no or bad credentials -> 401 with `WWW-Authenticate:
Bearer`; a cookie-session write without the right CSRF header -> 403. The
reason given never says whether an account or token exists.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request

from admin.api.problems import ApiProblem
from admin.services.actor import Actor

SESSION_COOKIE = "barid_admin"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotAuthenticated(Exception):
    """The credentials are missing, unknown, expired or revoked (no detail given)."""


@dataclass(frozen=True)
class SessionActor:
    actor: Actor
    csrf_secret: str


class Authenticator(Protocol):
    """What the accounts service offers the API (contract; raise NotAuthenticated)."""

    async def by_token(self, secret: str, client: str) -> Actor: ...

    async def by_session(self, session_id: str, client: str) -> SessionActor: ...


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _unauthenticated() -> ApiProblem:
    return ApiProblem(
        401,
        "Unauthorized",
        "valid credentials are required",
        kind="unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="barid-admin"'},
    )


async def current_actor(request: Request) -> Actor:
    """FastAPI dependency: the authenticated Actor of this request, or a problem."""
    authenticator: Authenticator = request.app.state.authenticator
    client = client_address(request)
    header = request.headers.get("authorization", "")
    try:
        if header:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise NotAuthenticated
            actor = await authenticator.by_token(secret.strip(), client)
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            if not cookie:
                raise NotAuthenticated
            session = await authenticator.by_session(cookie, client)
            if request.method not in SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent.encode(), session.csrf_secret.encode()):
                    raise ApiProblem(
                        403,
                        "Forbidden",
                        f"a cookie session must send its CSRF token in {CSRF_HEADER}",
                        kind="csrf",
                    )
            actor = session.actor
    except NotAuthenticated:
        raise _unauthenticated() from None
    return actor
