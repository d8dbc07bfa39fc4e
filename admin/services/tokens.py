"""API tokens for automation: scoped to a role (and agency), expiring, revocable.

Owns: creating a token (the secret is returned once and stored only as a keyed
hash), listing and revoking tokens within the actor's scope (the same rule as
granting the token's role), and `authenticate_token` (unknown, expired or
revoked secrets refused; the last use recorded). A creation may carry an
idempotency key (kept as a keyed hash, unique per creator): a retry with it
never makes a second token. Must not: print, or put a secret into an event,
an error or a log.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin.services.account_base import (
    AccountError,
    AccountKeys,
    AccountPart,
    Clock,
    Conflict,
    UnknownObject,
    active_agency,
    agency_path,
    all_agency_paths,
    parse_stamp,
    require_account_read,
    stamp,
    system_clock,
)
from admin.services.accounts import check_scope_argument, parse_role
from admin.services.actor import Actor, OutOfScope, Role, in_scope, require_grant
from gateway.store.admin_models import AdminToken
from gateway.store.db import writing
from gateway.store.models import Agency

PREFIX = "barid_"  # recognisable in a leaked file or a secret scanner
MAX_DAYS = 366
DEFAULT_DAYS = 90
MAX_NAME = 100
LAST_USED_EVERY = dt.timedelta(minutes=1)  # how often a busy token's last use is written


class TokenRefused(Exception):
    """A token that does not sign anything in: `reason` is unknown, expired or revoked."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"API token {reason}")
        self.reason = reason


@dataclass(frozen=True)
class TokenView:
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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NewToken:
    """The one time the secret is seen."""

    token: TokenView
    secret: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.token.as_dict(), "secret": self.secret}


def _view(row: AdminToken, agency: str | None) -> TokenView:
    return TokenView(
        id=row.id, name=row.name, role=row.role, agency=agency, created_by=row.created_by,
        created_at=row.created_at, expires_at=row.expires_at, revoked_at=row.revoked_at,
        last_used_at=row.last_used_at, last_used_from=row.last_used_from,
    )  # fmt: skip


class TokenExists(Conflict):
    """A token was created already for this idempotency key by the same creator,
    for the same request: its secret is not shown again. `token_id` names it."""

    def __init__(self, token_id: int) -> None:
        super().__init__(
            f"API token {token_id} was created already for this idempotency key; its secret"
            " was shown once; revoke it and create another if it was lost"
        )
        self.token_id = token_id


def _same_request(row: AdminToken, label: str, role: Role, agency_id: int | None,
                  days: int) -> bool:  # fmt: skip
    lifetime = parse_stamp(row.expires_at) - parse_stamp(row.created_at)
    return (row.name, row.role, row.agency_id, lifetime) == (
        label,
        role.value,
        agency_id,
        dt.timedelta(days=days),
    )


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > MAX_NAME or not cleaned.isprintable():
        raise AccountError(f"a token name is 1 to {MAX_NAME} printable characters")
    return cleaned


class Tokens(AccountPart):
    """API tokens; each public coroutine is one audited transaction (or one read)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keys: AccountKeys,
        *,
        clock: Clock = system_clock,
        max_days: int = MAX_DAYS,
    ) -> None:
        super().__init__(sessions, keys, clock=clock)
        self.max_days = max_days

    async def create(
        self,
        actor: Actor,
        *,
        role: str | Role,
        name: str,
        agency: str | None = None,
        expires_days: int = DEFAULT_DAYS,
        idempotency_key: str | None = None,
    ) -> NewToken:
        """A new token; its secret is in the answer only.

        With `idempotency_key`, a token this creator made with that key before is
        never made again: the same request is `TokenExists` (naming it), another
        request with the key is an `AccountError`.
        """
        wanted = parse_role(role)
        scope = check_scope_argument(wanted, agency)
        label = _clean_name(name)
        if not 1 <= expires_days <= self.max_days:
            raise AccountError(f"a token expires after 1 to {self.max_days} days")
        secret = PREFIX + secrets.token_urlsafe(32)
        key_hash = None
        if idempotency_key is not None:
            key_hash = self._keys.keyed_hash("token-idempotency", idempotency_key)
        now = self._now()
        async with writing(self._sessions) as session:
            agency_id, path = None, None
            if scope is not None:
                found = await active_agency(session, scope)
                agency_id, path = found.id, await agency_path(session, found.id)
            require_grant(actor, wanted, path)
            if key_hash is not None:
                earlier = await session.scalar(
                    select(AdminToken).where(
                        AdminToken.created_by == actor.audit_name,
                        AdminToken.idempotency_hash == key_hash,
                    )
                )
                if earlier is not None:
                    if _same_request(earlier, label, wanted, agency_id, expires_days):
                        raise TokenExists(earlier.id)
                    raise AccountError("this idempotency key was used for another token request")
            row = AdminToken(
                name=label, secret_hash=self._keys.keyed_hash("token", secret), role=wanted.value,
                agency_id=agency_id, created_by=actor.audit_name, created_at=stamp(now),
                expires_at=stamp(now + dt.timedelta(days=expires_days)),
                idempotency_hash=key_hash,
            )  # fmt: skip
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:  # the same key at the same moment: the other one won
                raise Conflict("an API token is being created for this idempotency key") from None
            view = _view(row, scope)
            await self._audit(session, actor, "admin.token.create", f"token:{row.id}", before=None,
                              after=_facts(view))  # fmt: skip
        return NewToken(view, secret)

    async def list_tokens(self, actor: Actor) -> list[TokenView]:
        """Tokens the actor may see: scoped ones inside its subtree; all for unscoped roles."""
        async with self._sessions() as session:
            await require_account_read(session, actor)
            paths = await all_agency_paths(session)
            rows = (await session.scalars(select(AdminToken).order_by(AdminToken.id))).all()
            codes = {i: p[-1] for i, p in paths.items() if p}
        return [
            _view(row, codes.get(row.agency_id) if row.agency_id is not None else None)
            for row in rows
            if in_scope(actor, paths.get(row.agency_id) if row.agency_id is not None else None)
        ]

    async def revoke(self, actor: Actor, token_id: int) -> TokenView:
        """Revoke a token now; it is refused from then on (kept for the record)."""
        async with writing(self._sessions) as session:
            row = await session.get(AdminToken, token_id, with_for_update=True)
            path = await agency_path(session, row.agency_id) if row and row.agency_id else None
            try:
                if row is None or not in_scope(actor, path):
                    raise OutOfScope("not found")  # an existing token outside: not found too
                require_grant(actor, Role(row.role), path)
            except OutOfScope:
                raise UnknownObject(f"no API token {token_id}") from None
            if row.revoked_at is not None:
                raise Conflict(f"API token {token_id} is already revoked")
            row.revoked_at, row.revoked_by = stamp(self._now()), actor.audit_name
            view = _view(row, path[-1] if path else None)
            await self._audit(session, actor, "admin.token.revoke", f"token:{row.id}",
                              before={"revoked": False}, after={"revoked": True})  # fmt: skip
        return view

    async def authenticate_token(self, secret: str, client: str) -> Actor:
        """The Actor a token acts as; TokenRefused (unknown, expired, revoked) otherwise."""
        now = self._now()
        digest = self._keys.keyed_hash("token", secret.strip())
        async with self._sessions() as session:
            row = await session.scalar(select(AdminToken).where(AdminToken.secret_hash == digest))
            if row is None:
                raise TokenRefused("unknown")
            if row.revoked_at is not None:
                raise TokenRefused("revoked")
            if now >= parse_stamp(row.expires_at):
                raise TokenRefused("expired")
            agency = None
            if row.agency_id is not None:
                agency = await session.scalar(select(Agency.code).where(Agency.id == row.agency_id))
        last = row.last_used_at
        if (
            last is None
            or now - parse_stamp(last) >= LAST_USED_EVERY
            or row.last_used_from != client
        ):
            # A busy token's last use is written at most once a minute per client address.
            async with writing(self._sessions) as session:
                await session.execute(
                    update(AdminToken)
                    .where(AdminToken.id == row.id)
                    .values(last_used_at=stamp(now), last_used_from=client[:100])
                )
        return Actor(f"token:{row.id}:{row.name}", Role(row.role), agency, client=client,
                     channel="api")  # fmt: skip


def _facts(view: TokenView) -> dict[str, Any]:
    return {"name": view.name, "role": view.role, "agency": view.agency,
            "expires_at": view.expires_at}  # fmt: skip
