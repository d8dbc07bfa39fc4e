"""Administrators' second factor: TOTP enrolment and confirmation, recovery codes.

Owns: sealing a new TOTP secret (shown once, as an otpauth URI and a QR code),
confirming it with a code, ten single-use recovery codes (kept as keyed hashes),
and accepting a code at sign-in: a code of a used time-step is refused (no
replay), a recovery code works once. Enrolling someone else needs the right to
grant every role they hold. Must not: check passwords (admin.services.login).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from admin.services.account_base import (
    AccountError,
    AccountPart,
    Conflict,
    UnknownObject,
    active_employee,
    agency_by_code,
    agency_path,
    stamp,
)
from admin.services.actor import Actor, Area, Role, require, require_grant
from gateway.stamping.qr import QrTooLarge, qr_png, qr_svg
from gateway.store.admin_models import AdminGrant, AdminRecoveryCode, AdminTotp, AdminTotpStep
from gateway.store.db import writing
from gateway.store.models import Employee
from keys import otp

KEEP_STEPS = 20  # used time-steps kept per employee (far more than the drift window)


@dataclass(frozen=True)
class Enrolment:
    """What the person enrolling sees once: nothing here is stored in the clear."""

    address: str
    uri: str
    qr_png: bytes
    qr_svg: str
    recovery_codes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "uri": self.uri, "recovery_codes": self.recovery_codes}


class TwoFactor(AccountPart):
    """TOTP and recovery codes; each public coroutine is one audited transaction."""

    async def _require_manage(
        self, session: AsyncSession, actor: Actor, employee: Employee
    ) -> None:
        """Oneself, or an actor who may grant every role the employee holds."""
        if actor.account == employee.address:
            return
        require(actor, Area.ACCOUNTS, write=True,
                agency_path=await agency_path(session, employee.agency_id))  # fmt: skip
        grants = (
            await session.execute(
                select(AdminGrant.role, AdminGrant.scope).where(
                    AdminGrant.employee_id == employee.id
                )
            )
        ).all()
        for role, scope in grants:
            path = None
            if scope:
                path = await agency_path(session, (await agency_by_code(session, scope)).id)
            require_grant(actor, Role(role), path)

    async def enrol(self, actor: Actor, address: str) -> Enrolment:
        """A new TOTP secret (replacing any) and new recovery codes; usable once confirmed."""
        secret = otp.new_secret()
        codes = otp.new_recovery_codes()
        async with writing(self._sessions) as session:
            employee = await active_employee(session, address)
            await self._require_manage(session, actor, employee)
            now = stamp(self._now())
            old = await session.get(AdminTotp, employee.id)
            before = _state(old)
            nonce, sealed = self._keys.seal(secret, employee.id)
            if old is None:
                session.add(AdminTotp(employee_id=employee.id, nonce=nonce, sealed_secret=sealed,
                                      created_at=now, confirmed_at=None))  # fmt: skip
            else:
                old.nonce, old.sealed_secret, old.created_at, old.confirmed_at = (
                    nonce, sealed, now, None,
                )  # fmt: skip
            await session.execute(
                delete(AdminTotpStep).where(AdminTotpStep.employee_id == employee.id)
            )
            await self._replace_codes(session, employee.id, codes, now)
            uri = otp.provisioning_uri(secret, employee.address)
            try:  # before the commit: an enrolment nobody can scan is not made
                png, _version = qr_png(uri)
            except QrTooLarge:
                raise AccountError("the address is too long for a TOTP QR code") from None
            await self._audit(session, actor, "admin.totp.enrol", employee.address,
                              before={"totp": before}, after={"totp": "pending"},
                              extra={"recovery_codes": len(codes)})  # fmt: skip
            return Enrolment(employee.address, uri, png, qr_svg(uri), codes)

    async def confirm(self, actor: Actor, address: str, code: str) -> None:
        """Make the pending secret usable: `code` must be its current code."""
        async with writing(self._sessions) as session:
            employee = await active_employee(session, address)
            await self._require_manage(session, actor, employee)
            row = await session.get(AdminTotp, employee.id)
            if row is None:
                raise UnknownObject(f"{employee.address} has no TOTP enrolment")
            if row.confirmed_at is not None:
                raise Conflict(f"the TOTP enrolment of {employee.address} is already confirmed")
            secret = self._keys.unseal(row.nonce, row.sealed_secret, employee.id)
            step = otp.matching_step(secret, code.strip(), self._now().timestamp())
            if step is None:
                raise AccountError("the code does not match: check the device's clock and retry")
            row.confirmed_at = stamp(self._now())
            session.add(AdminTotpStep(employee_id=employee.id, step=step, used_at=row.confirmed_at))
            await self._audit(session, actor, "admin.totp.confirm", employee.address,
                              before={"totp": "pending"}, after={"totp": "confirmed"})  # fmt: skip

    async def new_recovery_codes(self, actor: Actor, address: str) -> list[str]:
        """Ten fresh recovery codes; the old ones stop working."""
        codes = otp.new_recovery_codes()
        async with writing(self._sessions) as session:
            employee = await active_employee(session, address)
            await self._require_manage(session, actor, employee)
            left = await self._unused_codes(session, employee.id)
            await self._replace_codes(session, employee.id, codes, stamp(self._now()))
            await self._audit(session, actor, "admin.recovery-codes.replace", employee.address,
                              before={"unused": left}, after={"unused": len(codes)})  # fmt: skip
        return codes

    async def _replace_codes(
        self, session: AsyncSession, employee_id: int, codes: list[str], now: str
    ) -> None:
        await session.execute(
            delete(AdminRecoveryCode).where(AdminRecoveryCode.employee_id == employee_id)
        )
        for code in codes:
            digest = self._keys.keyed_hash("recovery", otp.normalize_recovery_code(code) or "")
            session.add(
                AdminRecoveryCode(employee_id=employee_id, code_hash=digest, created_at=now)
            )
        await session.flush()

    @staticmethod
    async def _unused_codes(session: AsyncSession, employee_id: int) -> int:
        count = await session.scalar(
            select(func.count())
            .select_from(AdminRecoveryCode)
            .where(
                AdminRecoveryCode.employee_id == employee_id, AdminRecoveryCode.used_at.is_(None)
            )
        )
        return int(count or 0)

    async def status(self, actor: Actor, address: str) -> dict[str, Any]:
        """Enrolment state and unused recovery codes (no secret)."""
        async with self._sessions() as session:
            employee = await active_employee(session, address)
            if actor.account != employee.address:
                require(actor, Area.ACCOUNTS, write=False,
                        agency_path=await agency_path(session, employee.agency_id))  # fmt: skip
            row = await session.get(AdminTotp, employee.id)
            left = await self._unused_codes(session, employee.id)
            return {"address": employee.address, "totp": _state(row), "recovery_codes_left": left}

    async def use(
        self, session: AsyncSession, actor: Actor, employee_id: int, text: str
    ) -> str | None:
        """Accept a TOTP or recovery code at sign-in, in the caller's transaction.

        None when accepted (the step or code is now used); otherwise why not:
        "not-enrolled", "wrong-code", "replayed-code" or "used-recovery-code".
        """
        row = await session.get(AdminTotp, employee_id)
        if row is None or row.confirmed_at is None:
            return "not-enrolled"
        if otp.is_totp_code(otp.normalize_code(text)):
            return await self._use_totp(session, row, otp.normalize_code(text))
        return await self._use_recovery(session, actor, employee_id, text)

    async def _use_totp(self, session: AsyncSession, row: AdminTotp, code: str) -> str | None:
        secret = self._keys.unseal(row.nonce, row.sealed_secret, row.employee_id)
        step = otp.matching_step(secret, code, self._now().timestamp())
        if step is None:
            return "wrong-code"
        newest = await session.scalar(
            select(func.max(AdminTotpStep.step)).where(AdminTotpStep.employee_id == row.employee_id)
        )
        if newest is not None and step <= newest:
            return "replayed-code"  # this code, or a later one, was used already
        await session.execute(
            delete(AdminTotpStep).where(
                AdminTotpStep.employee_id == row.employee_id, AdminTotpStep.step < step - KEEP_STEPS
            )
        )
        # The primary key (employee, step) refuses a second node using the same code.
        session.add(
            AdminTotpStep(employee_id=row.employee_id, step=step, used_at=stamp(self._now()))
        )
        await session.flush()
        return None

    async def _use_recovery(
        self, session: AsyncSession, actor: Actor, employee_id: int, text: str
    ) -> str | None:
        cleaned = otp.normalize_recovery_code(text)
        if cleaned is None:
            return "wrong-code"
        digest = self._keys.keyed_hash("recovery", cleaned)
        result = await session.execute(
            update(AdminRecoveryCode)
            .where(
                AdminRecoveryCode.employee_id == employee_id,
                AdminRecoveryCode.code_hash == digest,
                AdminRecoveryCode.used_at.is_(None),
            )
            .values(used_at=stamp(self._now()))
        )
        if not getattr(result, "rowcount", 0):
            used = await session.scalar(
                select(AdminRecoveryCode.id).where(
                    AdminRecoveryCode.employee_id == employee_id,
                    AdminRecoveryCode.code_hash == digest,
                )
            )
            return "used-recovery-code" if used is not None else "wrong-code"
        left = await self._unused_codes(session, employee_id)
        await self._audit(session, actor, "admin.recovery-code.use", actor.account,
                          before={"unused": left + 1}, after={"unused": left})  # fmt: skip
        return None


def _state(row: AdminTotp | None) -> str:
    if row is None:
        return "none"
    return "confirmed" if row.confirmed_at is not None else "pending"
