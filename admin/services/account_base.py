"""What the admin-account services share: keys, clock, lookups, refusals, audit.

Owns: the keys derived for accounts (sealing TOTP secrets, keyed hashes of
recovery codes, token secrets and session ids), the injected clock and the
stored time format, agency paths from the directory's tree, and the audit event
every change writes (acting account, role, client address, before/after). Must
not: write an account row itself, or put a secret into an event or an error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin.services.actor import Actor, Area, require
from gateway.store import audit
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.models import Agency, Employee
from keys.gateway_keys import GatewayKeys, derive_key
from policies.directory import AgencyStatus, EmployeeStatus

TOTP_SEAL_PURPOSE = "admin-totp-seal"  # HKDF purpose: AES-256-GCM key of TOTP secrets
CREDENTIAL_HASH_PURPOSE = "admin-credential-hash"  # HMAC key of codes, tokens, session ids
MAX_AGENCY_DEPTH = 64

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def stamp(when: dt.datetime) -> str:
    """The stored form of a time: fixed-width ISO 8601 UTC text (as gateway.store.db)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


class AccountError(Exception):
    """A request about accounts that does not apply; the text is safe to show."""


class UnknownObject(AccountError):
    """No such employee, agency, grant or token (the API answers 404)."""


class Conflict(AccountError):
    """The change is already made or contradicts the current state (409)."""


@dataclass(frozen=True)
class AccountKeys:
    audit: bytes
    seal_key: bytes
    hash_key: bytes

    @classmethod
    def from_gateway(cls, keys: GatewayKeys) -> AccountKeys:
        return cls.from_master(keys.master_key)

    @classmethod
    def from_master(cls, master: bytes) -> AccountKeys:
        return cls(
            audit=derive_key(master, AUDIT_KEY_PURPOSE),
            seal_key=derive_key(master, TOTP_SEAL_PURPOSE),
            hash_key=derive_key(master, CREDENTIAL_HASH_PURPOSE),
        )

    def keyed_hash(self, kind: str, secret: str) -> str:
        """HMAC-SHA256 of a secret: a stolen database alone cannot test guesses."""
        message = f"{kind}\0{secret}".encode()
        return hmac.new(self.hash_key, message, hashlib.sha256).hexdigest()

    def seal(self, secret: bytes, employee_id: int) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return nonce, AESGCM(self.seal_key).encrypt(nonce, secret, _totp_aad(employee_id))

    def unseal(self, nonce: bytes, sealed: bytes, employee_id: int) -> bytes:
        return AESGCM(self.seal_key).decrypt(nonce, sealed, _totp_aad(employee_id))


def _totp_aad(employee_id: int) -> bytes:
    return f"barid/admin-totp/{employee_id}".encode("ascii")


class AccountPart:
    """What every account service holds: sessions, keys and the clock."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keys: AccountKeys,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._clock = clock

    def _now(self) -> dt.datetime:
        return self._clock()

    async def _audit(
        self,
        session: AsyncSession,
        actor: Actor,
        action: str,
        target: str,
        *,
        before: Any = None,
        after: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """The change's audit event, in the caller's transaction (never a secret)."""
        details = {"by": acting(actor), "before": before, "after": after, **(extra or {})}
        await audit.append(
            session, self._keys.audit, actor=actor.audit_name, action=action,
            target=target, details=details,
        )  # fmt: skip


def acting(actor: Actor) -> dict[str, Any]:
    """Who acted, as an audit event records it."""
    return {
        "account": actor.account,
        "role": actor.role.value,
        "agency": actor.agency,
        "client": actor.client,
        "channel": actor.channel,
    }


async def agency_path(session: AsyncSession, agency_id: int) -> list[str]:
    """The agency's code and its ancestors' codes, root first (the tree's path)."""
    path: list[str] = []
    current: int | None = agency_id
    while current is not None and len(path) < MAX_AGENCY_DEPTH:
        stmt = select(Agency.code, Agency.parent_id).where(Agency.id == current)
        row = (await session.execute(stmt)).first()
        if row is None:
            break
        path.append(row[0])
        current = row[1]
    return list(reversed(path))


async def all_agency_paths(session: AsyncSession) -> dict[int, list[str]]:
    """Every agency's path (root first) by id, from one read of the tree."""
    rows = (await session.execute(select(Agency.id, Agency.code, Agency.parent_id))).all()
    by_id = {row[0]: (row[1], row[2]) for row in rows}
    paths: dict[int, list[str]] = {}
    for agency_id in by_id:
        path: list[str] = []
        current: int | None = agency_id
        while current is not None and current in by_id and len(path) < MAX_AGENCY_DEPTH:
            code, current = by_id[current]
            path.append(code)
        paths[agency_id] = list(reversed(path))
    return paths


async def agency_by_code(session: AsyncSession, code: str) -> Agency:
    agency = await session.scalar(select(Agency).where(Agency.code == code.strip().upper()))
    if agency is None:
        raise UnknownObject(f"unknown agency {code.strip().upper()!r}")
    return agency


async def active_agency(session: AsyncSession, code: str) -> Agency:
    agency = await agency_by_code(session, code)
    if agency.status != AgencyStatus.ACTIVE.value:
        raise Conflict(f"agency {agency.code} is {agency.status}")
    return agency


async def employee_by_address(session: AsyncSession, address: str) -> Employee:
    wanted = address.strip().lower()
    employee = await session.scalar(select(Employee).where(Employee.address == wanted))
    if employee is None:
        raise UnknownObject(f"unknown employee {wanted!r}")
    return employee


async def active_employee(session: AsyncSession, address: str) -> Employee:
    employee = await employee_by_address(session, address)
    if employee.status != EmployeeStatus.ACTIVE.value:
        raise Conflict(f"employee {employee.address} is {employee.status}")
    return employee


async def require_account_read(session: AsyncSession, actor: Actor) -> None:
    """May the actor look at accounts at all (in its own subtree)?"""
    own = None
    if actor.agency is not None:
        found = await session.scalar(select(Agency.id).where(Agency.code == actor.agency))
        own = await agency_path(session, found) if found is not None else [actor.agency]
    require(actor, Area.ACCOUNTS, write=False, agency_path=own)
