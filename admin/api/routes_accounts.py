"""Routes of admin accounts: signing in and out, role grants, API tokens.

Owns: the HTTP shape of these use cases (admin.services.login, .accounts,
.tokens): request and response models, the session cookie (Secure, HttpOnly,
SameSite=Strict, the absolute expiry as Max-Age) and the refusals as problems.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from admin.api.auth import SESSION_COOKIE, client_address, current_actor
from admin.api.deps import accounts
from admin.api.idempotency import idempotency_key
from admin.api.problems import ApiProblem
from admin.services.account_base import AccountError, UnknownObject
from admin.services.account_base import Conflict as AccountConflict
from admin.services.account_services import AccountServices
from admin.services.actor import Actor
from admin.services.login import LoginRefused, SessionRefused

router = APIRouter(tags=["accounts"])
ACTOR = Depends(current_actor)
ACCOUNTS = Depends(accounts)
IDEMPOTENCY_KEY = Depends(idempotency_key)


class SignIn(BaseModel):
    address: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    code: str = Field(max_length=64, description="TOTP code or a recovery code")
    role: str | None = Field(default=None, max_length=32)
    agency: str | None = Field(default=None, max_length=32)


class SignedIn(BaseModel):
    account: str
    role: str
    agency: str | None
    csrf_token: str = Field(description="send it back in X-CSRF-Token on every change")
    expires_at: str


class Grant(BaseModel):
    address: str = Field(max_length=320)
    role: str = Field(max_length=32)
    agency: str | None = Field(default=None, max_length=32)


class GrantOut(BaseModel):
    id: int
    address: str
    role: str
    agency: str | None
    granted_by: str
    granted_at: str


class TokenRequest(BaseModel):
    name: str = Field(max_length=100)
    role: str = Field(max_length=32)
    agency: str | None = Field(default=None, max_length=32)
    expires_days: int = Field(default=90, ge=1, le=366)


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    agency: str | None
    created_by: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    last_used_at: str | None
    last_used_from: str | None


class NewTokenOut(BaseModel):
    token: TokenOut
    secret: str = Field(description="shown once; only a keyed hash is stored")


def account_problem(exc: AccountError) -> ApiProblem:
    if isinstance(exc, UnknownObject):
        return ApiProblem(404, "Not Found", str(exc), kind="not-found")
    if isinstance(exc, AccountConflict):
        return ApiProblem(409, "Conflict", str(exc), kind="conflict")
    return ApiProblem(422, "Unprocessable Content", str(exc), kind="invalid-input")


@router.post("/session", response_model=SignedIn, tags=["session"])
async def sign_in(
    body: SignIn, request: Request, response: Response, services: AccountServices = ACCOUNTS
) -> SignedIn:
    """Sign in with password and TOTP (or a recovery code); sets the session cookie."""
    if services.logins is None:
        raise ApiProblem(503, "Service Unavailable", "sign-in is not available here")
    try:
        new = await services.logins.login(
            body.address, body.password, body.code, client_address(request),
            role=body.role, agency=body.agency,
        )  # fmt: skip
    except LoginRefused as exc:
        status = {"throttled": 429, "unavailable": 503}.get(exc.reason, 401)
        raise ApiProblem(
            status, "Sign-in refused", str(exc), kind=f"sign-in-{exc.reason}"
        ) from None
    response.set_cookie(
        SESSION_COOKIE, new.session_id, secure=True, httponly=True, samesite="strict",
        path="/", max_age=int(services.logins.absolute.total_seconds()),
    )  # fmt: skip
    return SignedIn(
        account=new.actor.account, role=new.actor.role.value, agency=new.actor.agency,
        csrf_token=new.csrf_secret, expires_at=new.expires_at,
    )  # fmt: skip


@router.delete("/session", status_code=204, tags=["session"])
async def sign_out(
    request: Request, response: Response, actor: Actor = ACTOR,
    services: AccountServices = ACCOUNTS,
) -> Response:  # fmt: skip
    """End the cookie session (a bearer token is revoked under /tokens instead)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and services.logins is not None:
        with contextlib.suppress(SessionRefused):
            await services.logins.end_session(cookie, client_address(request))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


@router.get("/admins", response_model=list[GrantOut])
async def list_grants(
    address: str | None = None, actor: Actor = ACTOR, services: AccountServices = ACCOUNTS
) -> list[GrantOut]:
    """Role grants the caller may see (scoped roles: inside their subtree)."""
    try:
        grants = await services.grants.list_grants(actor, address)
    except AccountError as exc:
        raise account_problem(exc) from None
    return [GrantOut(**grant.as_dict()) for grant in grants]


@router.post("/admins", response_model=GrantOut, status_code=201)
async def grant_role(
    body: Grant, actor: Actor = ACTOR, services: AccountServices = ACCOUNTS
) -> GrantOut:
    """Grant a role (never above the caller's own; scoped roles name an agency)."""
    try:
        grant = await services.grants.grant(actor, body.address, body.role, agency=body.agency)
    except AccountError as exc:
        raise account_problem(exc) from None
    return GrantOut(**grant.as_dict())


@router.post("/admins/revoke", response_model=GrantOut)
async def revoke_role(
    body: Grant, actor: Actor = ACTOR, services: AccountServices = ACCOUNTS
) -> GrantOut:
    """Revoke a role; the sessions opened under it end."""
    try:
        grant = await services.grants.revoke(actor, body.address, body.role, agency=body.agency)
    except AccountError as exc:
        raise account_problem(exc) from None
    return GrantOut(**grant.as_dict())


@router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(actor: Actor = ACTOR, services: AccountServices = ACCOUNTS) -> list[TokenOut]:
    try:
        tokens = await services.tokens.list_tokens(actor)
    except AccountError as exc:
        raise account_problem(exc) from None
    return [TokenOut(**token.as_dict()) for token in tokens]


@router.post("/tokens", response_model=NewTokenOut, status_code=201)
async def create_token(
    body: TokenRequest, key: str | None = IDEMPOTENCY_KEY, actor: Actor = ACTOR,
    services: AccountServices = ACCOUNTS,
) -> NewTokenOut:  # fmt: skip
    """A new API token for automation; its secret is in this answer only.

    Safe to retry with an `Idempotency-Key`: a secret is never shown twice, so a
    retry with the same key and request answers 409 naming the token already
    created for that key (revoke it and create another if its secret was lost),
    never a second token; the same key with another request is 422. Keys are
    remembered per creator for as long as the token row exists.
    """
    try:
        new = await services.tokens.create(
            actor, role=body.role, name=body.name, agency=body.agency,
            expires_days=body.expires_days, idempotency_key=key,
        )  # fmt: skip
    except AccountError as exc:
        raise account_problem(exc) from None
    return NewTokenOut(token=TokenOut(**new.token.as_dict()), secret=new.secret)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
async def revoke_token(
    token_id: int, actor: Actor = ACTOR, services: AccountServices = ACCOUNTS
) -> TokenOut:
    try:
        view = await services.tokens.revoke(actor, token_id)
    except AccountError as exc:
        raise account_problem(exc) from None
    return TokenOut(**view.as_dict())
