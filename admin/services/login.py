"""People signing in to the management plane: password + TOTP, then a web session.

Owns: `authenticate_password_totp` (the password through gateway.intake.login, so the
failure throttle is the one SMTP AUTH and IMAP LOGIN use, and a wrong or
replayed second factor counts as a failed login), and sessions: created under
one grant, the id shown once and kept as a keyed hash, a CSRF secret, idle and
absolute expiry, ended on sign-out or when the grant is revoked. Must not: set
cookies or speak HTTP (the admin API does), or say which credential was wrong.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin.services.account_base import (
    AccountKeys,
    AccountPart,
    Clock,
    UnknownObject,
    parse_stamp,
    stamp,
    system_clock,
)
from admin.services.accounts import Grants, GrantView
from admin.services.actor import Actor, Role
from admin.services.totp import TwoFactor
from gateway.intake.login import Authenticator, Outcome
from gateway.store.admin_models import AdminGrant, AdminSession
from gateway.store.db import writing
from gateway.store.models import Employee
from policies.directory import EmployeeStatus

PROTOCOL = "admin"  # the protocol label of admin sign-ins in the shared login metrics
IDLE = dt.timedelta(minutes=15)  # a session unused this long has ended
ABSOLUTE = dt.timedelta(hours=8)  # and none lives longer than this

_LOGIN_MESSAGES = {
    "refused": "sign-in refused: wrong address, password or code",
    "throttled": "too many failed sign-ins: try again later",
    "unavailable": "sign-in is unavailable: try again shortly",
}


class LoginRefused(Exception):
    """A refused sign-in. `reason` (refused, throttled, unavailable) is what the
    person is told; `detail` (password, no-role, not-enrolled, wrong-code,
    replayed-code, used-recovery-code) is for logs and tests, never the client."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(_LOGIN_MESSAGES[reason])
        self.reason = reason
        self.detail = detail or reason


class SessionRefused(Exception):
    """A session id that no longer signs anyone in: unknown, idle, expired or revoked."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"session {reason}: sign in again")
        self.reason = reason


class _SecondFactorRefused(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class NewSession:
    """Shown once to the signing-in browser (as cookies); only hashes are stored."""

    session_id: str
    csrf_secret: str
    actor: Actor
    expires_at: str


@dataclass(frozen=True)
class SessionState:
    """A live session after `touch`: who acts, and the secret a write must echo."""

    ref: int
    actor: Actor
    csrf_secret: str
    expires_at: str
    idle_expires_at: str

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode(), self.csrf_secret.encode()
        )


def choose_grant(grants: list[GrantView], role: str | None, agency: str | None) -> GrantView | None:
    """The grant to sign in under: the one named, else the first in ROLE_ORDER."""
    for grant in grants:
        if role is not None and grant.role != role:
            continue
        if agency is not None and (grant.agency or "") != agency.strip().upper():
            continue
        return grant
    return None


class Logins(AccountPart):
    """Sign-in and sessions; each public coroutine is one transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keys: AccountKeys,
        *,
        authenticator: Authenticator,
        clock: Clock = system_clock,
        idle: dt.timedelta = IDLE,
        absolute: dt.timedelta = ABSOLUTE,
    ) -> None:
        super().__init__(sessions, keys, clock=clock)
        self._auth = authenticator
        self._grants = Grants(sessions, keys, clock=clock)
        self._two_factor = TwoFactor(sessions, keys, clock=clock)
        self.idle, self.absolute = idle, absolute

    async def authenticate_password_totp(
        self,
        address: str,
        password: str,
        code_or_recovery: str,
        client: str,
        *,
        role: str | None = None,
        agency: str | None = None,
        channel: str = "web",
    ) -> Actor:
        """The Actor for a right password, role and second factor; else LoginRefused."""
        chosen: list[GrantView] = []
        why = ["password"]

        async def second_factor(account: str) -> bool:
            grant = choose_grant(await self._grants.grants_of(account), role, agency)
            if grant is None:
                why[0] = "no-role"
                return False
            actor = grant.actor(client=client, channel=channel)
            try:
                await self._use_second_factor(actor, code_or_recovery)
            except _SecondFactorRefused as exc:
                why[0] = exc.detail
                return False
            except IntegrityError:  # another node took the same time-step first
                why[0] = "replayed-code"
                return False
            chosen.append(grant)
            return True

        result = await self._auth.check(
            client, address, password, protocol=PROTOCOL, second_factor=second_factor
        )
        if result.outcome is Outcome.THROTTLED:
            raise LoginRefused("throttled")
        if result.outcome is Outcome.UNAVAILABLE:
            raise LoginRefused("unavailable")
        if result.outcome is not Outcome.OK or not chosen:
            raise LoginRefused("refused", why[0])
        return chosen[0].actor(client=client, channel=channel)

    async def _use_second_factor(self, actor: Actor, text: str) -> None:
        async with writing(self._sessions) as session:
            employee_id = await session.scalar(
                select(Employee.id).where(Employee.address == actor.account)
            )
            if employee_id is None:
                raise _SecondFactorRefused("no-role")
            refusal = await self._two_factor.use(session, actor, employee_id, text)
            if refusal is not None:
                raise _SecondFactorRefused(refusal)  # rolls back anything `use` wrote

    async def start_session(self, actor: Actor) -> NewSession:
        """A session for a signed-in person (after authenticate_password_totp)."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._now()
        expires = stamp(now + self.absolute)
        async with writing(self._sessions) as session:
            grant_id = await _grant_id(session, actor)
            row = AdminSession(
                id_hash=self._keys.keyed_hash("session", session_id), grant_id=grant_id,
                csrf_secret=csrf, client=actor.client[:100], created_at=stamp(now),
                last_seen_at=stamp(now), expires_at=expires,
            )  # fmt: skip
            session.add(row)
            await session.flush()
            await self._audit(session, actor, "admin.login", actor.account, before=None,
                              after={"session": row.id, "expires_at": expires})  # fmt: skip
        return NewSession(session_id, csrf, actor, expires)

    async def login(
        self, address: str, password: str, code: str, client: str, **choice: Any
    ) -> NewSession:
        """authenticate_password_totp, then start_session."""
        actor = await self.authenticate_password_totp(address, password, code, client, **choice)
        return await self.start_session(actor)

    async def touch_session(self, session_id: str, client: str) -> SessionState:
        """The session's state, its idle clock restarted; SessionRefused when it has ended."""
        now = self._now()
        ended = None
        async with writing(self._sessions) as session:
            found = await self._find(session, session_id)
            if found is None:
                raise SessionRefused("unknown")
            row, actor = found
            if now >= parse_stamp(row.expires_at):
                ended = "expired"
            elif now - parse_stamp(row.last_seen_at) >= self.idle:
                ended = "idle"
            elif actor is None:
                ended = "revoked"
            if ended is not None:
                await session.delete(row)
            else:
                row.last_seen_at = stamp(now)
        if ended is not None or actor is None:
            raise SessionRefused(ended or "revoked")
        return SessionState(
            ref=row.id,
            actor=Actor(actor.account, actor.role, actor.agency, client=client, channel="web"),
            csrf_secret=row.csrf_secret,
            expires_at=row.expires_at,
            idle_expires_at=stamp(min(now + self.idle, parse_stamp(row.expires_at))),
        )

    async def end_session(self, session_id: str, client: str) -> None:
        """Sign out: the session ends now (audited)."""
        async with writing(self._sessions) as session:
            found = await self._find(session, session_id)
            if found is None:
                raise SessionRefused("unknown")
            row, actor = found
            await session.delete(row)
            if actor is not None:
                who = Actor(actor.account, actor.role, actor.agency, client=client, channel="web")
                await self._audit(session, who, "admin.logout", who.account,
                                  before={"session": row.id}, after=None)  # fmt: skip

    async def expire_sessions(self) -> int:
        """Delete every session past its idle or absolute expiry; how many."""
        now = self._now()
        async with writing(self._sessions) as session:
            result = await session.execute(
                delete(AdminSession).where(
                    or_(
                        AdminSession.expires_at <= stamp(now),
                        AdminSession.last_seen_at <= stamp(now - self.idle),
                    )
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _find(
        self, session: AsyncSession, session_id: str
    ) -> tuple[AdminSession, Actor | None] | None:
        """The session row and who it signs in (None when the employee is no longer active)."""
        row = await session.scalar(
            select(AdminSession).where(
                AdminSession.id_hash == self._keys.keyed_hash("session", session_id)
            )
        )
        if row is None:
            return None
        grant = (
            await session.execute(
                select(AdminGrant.role, AdminGrant.scope, Employee.address, Employee.status)
                .join(Employee, Employee.id == AdminGrant.employee_id)
                .where(AdminGrant.id == row.grant_id)
            )
        ).first()
        if grant is None or grant[3] != EmployeeStatus.ACTIVE.value:
            return row, None
        return row, Actor(grant[2], Role(grant[0]), grant[1] or None, client=row.client)


async def _grant_id(session: AsyncSession, actor: Actor) -> int:
    found = await session.scalar(
        select(AdminGrant.id)
        .join(Employee, Employee.id == AdminGrant.employee_id)
        .where(
            Employee.address == actor.account,
            AdminGrant.role == actor.role.value,
            AdminGrant.scope == (actor.agency or ""),
        )
    )
    if found is None:
        raise UnknownObject(f"{actor.account} does not hold {actor.role.value}")
    return int(found)
