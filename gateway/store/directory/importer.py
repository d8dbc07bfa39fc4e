"""Bulk onboarding of agencies and employees: all rows or none, one audit event.

Owns: `import_rows` (parents first, one flush per tree level, employees in
chunks, counters advanced in one statement; a dry run rolls back). Must not:
parse CSV or report per-row problems (admin/directory_import.py does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import audit
from gateway.store.db import transaction, utcnow
from gateway.store.directory.base import DirectoryPart, bump_version
from gateway.store.directory.values import (
    AgencyInput,
    DirectoryError,
    EmployeeInput,
    checked_agency_code,
    clean_name,
    new_agency,
    normalize_address,
    normalize_role,
    parse_clearance,
    refuse_clash,
)
from gateway.store.models import Agency, Employee
from policies.codes import EmployeeCode, confusable_key
from policies.directory import EmployeeStatus


class _DryRunDone(Exception):
    """Raised inside a dry-run import to roll its transaction back."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("dry run")
        self.result = result


class DirectoryImporter(DirectoryPart):
    """Bulk imports in one transaction."""

    async def import_rows(
        self,
        agencies: Sequence[AgencyInput],
        employees: Sequence[EmployeeInput],
        *,
        actor: str,
        dry_run: bool = False,
        progress: Any = None,
    ) -> dict[str, Any]:
        """Bulk onboarding: all rows or none, in one transaction with one audit event.

        `agencies` must be ordered parents first (directory_import sorts them).
        Raises DirectoryError on the first refused row; callers validate rows first
        (`directory_import`) so that users get every bad row in one report.
        """
        try:
            return await self._import_rows(
                agencies, employees, actor=actor, dry_run=dry_run, progress=progress
            )
        except _DryRunDone as done:
            return done.result

    async def _import_rows(
        self,
        agencies: Sequence[AgencyInput],
        employees: Sequence[EmployeeInput],
        *,
        actor: str,
        dry_run: bool,
        progress: Any,
    ) -> dict[str, Any]:
        async with transaction(self._sessions) as session:
            # One read of the existing agencies; everything else is checked in memory
            # (the unique constraints still guard against concurrent writers).
            known: dict[str, tuple[int, int]] = {}
            taken: dict[str, str] = {}
            for row in await session.execute(
                select(Agency.id, Agency.code, Agency.code_key, Agency.next_employee_serial)
            ):
                known[row[1]] = (row[0], row[3])
                taken[row[2]] = row[1]
            wanted: dict[str, int] = {}
            for person in employees:
                code = person.agency.strip().upper()
                wanted[code] = wanted.get(code, 0) + 1
            depth, levels = _plan_levels(agencies, known, taken)
            await _insert_agencies(session, levels, known, wanted, progress)
            counters = {code: nxt for code, (_, nxt) in known.items()}
            rows_out, issued = _employee_rows(employees, known, counters)
            await _insert_employees(session, rows_out, progress)
            # Existing agencies that got employees: advance their counters in one go.
            bumps = [
                {"b_code": code, "b_next": counters[code]}
                for code in wanted
                if code in known and counters[code] != known[code][1] and code not in depth
            ]
            await _advance_counters(session, bumps)
            summary = {"agencies": len(agencies), "employees": len(employees)}
            await audit.append(
                session,
                self._audit_key,
                actor=actor,
                action="directory.import",
                target="",
                outcome="dry-run" if dry_run else "ok",
                details=summary,
            )
            await bump_version(session)
            result = {**summary, "dry_run": dry_run, "issued": issued}
            if dry_run:
                raise _DryRunDone(result)  # rolls the whole transaction back
            return result


_Levels = dict[int, list[tuple[AgencyInput, str]]]


def _plan_levels(
    agencies: Sequence[AgencyInput],
    known: dict[str, tuple[int, int]],
    taken: dict[str, str],
) -> tuple[dict[str, int], _Levels]:
    """New agencies by tree level, parents first (one flush per level gives ids)."""
    depth: dict[str, int] = {}
    levels: _Levels = {}
    for item in agencies:
        code = checked_agency_code(item.code)
        refuse_clash(code, taken.get(confusable_key(code)))
        taken[confusable_key(code)] = code
        parent = (item.parent or "").strip().upper() or None
        if parent is not None and parent not in known and parent not in depth:
            raise DirectoryError(f"agency {code}: unknown parent {parent}")
        depth[code] = depth[parent] + 1 if parent in depth else 0
        levels.setdefault(depth[code], []).append((item, code))
    return depth, levels


async def _insert_agencies(
    session: AsyncSession,
    levels: _Levels,
    known: dict[str, tuple[int, int]],
    wanted: dict[str, int],
    progress: Any,
) -> None:
    for level in sorted(levels):
        rows = [
            new_agency(
                item,
                known[item.parent.strip().upper()][0] if item.parent else None,
                wanted.get(code, 0) + 1,
            )
            for item, code in levels[level]
        ]
        session.add_all(rows)
        await session.flush()
        for agency in rows:
            known[agency.code] = (agency.id, 1)
        if progress is not None:
            progress(len(rows))


def _employee_rows(
    employees: Sequence[EmployeeInput],
    known: dict[str, tuple[int, int]],
    counters: dict[str, int],
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Checked employee rows with their issued codes (advancing `counters`)."""
    issued: list[dict[str, str]] = []
    rows_out: list[dict[str, Any]] = []
    now = utcnow()
    for person in employees:
        agency_code = person.agency.strip().upper()
        if agency_code not in known:
            raise DirectoryError(f"employee {person.address}: unknown agency {agency_code}")
        serial = counters[agency_code]
        counters[agency_code] = serial + 1
        code = str(EmployeeCode(agency_code, serial))
        rows_out.append(
            {
                "address": normalize_address(person.address),
                "agency_id": known[agency_code][0],
                "name_en": clean_name(person.name_en, "English name"),
                "name_ar": clean_name(person.name_ar or person.name_en, "Arabic name"),
                "role": normalize_role(person.role),
                "clearance": int(parse_clearance(person.clearance)),
                "status": EmployeeStatus.ACTIVE.value,
                "serial": serial,
                "code": code,
                "password_hash": person.password_hash,
                "encryption_key": None,
                "created_at": now,
            }
        )
        issued.append({"address": rows_out[-1]["address"], "code": code})
    return rows_out, issued


async def _insert_employees(
    session: AsyncSession, rows_out: list[dict[str, Any]], progress: Any
) -> None:
    for start in range(0, len(rows_out), 1000):
        chunk = rows_out[start : start + 1000]
        try:
            await session.execute(insert(Employee), chunk)
        except IntegrityError:
            raise DirectoryError(
                "an employee address or code already exists (changed concurrently?)"
            ) from None
        if progress is not None:
            progress(len(chunk))


async def _advance_counters(session: AsyncSession, bumps: list[dict[str, Any]]) -> None:
    if not bumps:
        return
    table = Agency.__table__
    assert isinstance(table, Table)
    await session.execute(
        update(table)
        .where(table.c.code == bindparam("b_code"))
        .values(next_employee_serial=bindparam("b_next")),
        bumps,
    )
