"""The store on SQLite and on a real PostgreSQL: migrations, directory, audit chain."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text, update

from gateway.store import audit, migrate
from gateway.store.db import create_engine, session_factory
from gateway.store.directory import AgencyInput, Directory, DirectoryError, EmployeeInput
from gateway.store.models import AuditEvent, Base, Employee
from policies.codes import EmployeeCode
from policies.directory import EmployeeStatus

KEY = os.urandom(32)


@pytest.fixture
async def directory(db_url: str) -> AsyncIterator[Directory]:
    engine = create_engine(db_url)
    await migrate.upgrade(engine)
    try:
        yield Directory(session_factory(engine), KEY)
    finally:
        await engine.dispose()


def engine_of(d: Directory):  # type: ignore[no-untyped-def]
    return d._sessions.kw["bind"]


async def test_migrations_upgrade_downgrade_upgrade_and_match_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        for _ in range(2):
            await migrate.upgrade(engine)
            assert await migrate.current_revision(engine) == migrate.head_revision()
            async with engine.connect() as conn:
                diff = await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
            assert diff == [], diff
            await migrate.downgrade(engine, "base")
            assert await migrate.current_revision(engine) is None
            async with engine.connect() as conn:
                tables = await conn.run_sync(
                    lambda sync: sync.dialect.get_table_names(sync)  # type: ignore[no-any-return]
                )
            assert set(tables) <= {"alembic_version"}
    finally:
        await engine.dispose()


async def test_sqlite_commits_durably(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await engine.dispose()


async def seed(d: Directory) -> None:
    await d.add_agency(
        AgencyInput("MOH", "Health", "الصحة", "ministry", "moh.gov.example"), actor="t"
    )
    await d.add_agency(
        AgencyInput("MOH-BGD", "Baghdad", "بغداد", "directorate", "moh.gov.example", "MOH"),
        actor="t",
    )


async def test_codes_are_issued_gap_free_per_agency(directory: Directory) -> None:
    await seed(directory)
    a = await directory.add_employee(EmployeeInput("a@moh.gov.example", "MOH", "A"), actor="t")
    b = await directory.add_employee(EmployeeInput("b@moh.gov.example", "MOH-BGD", "B"), actor="t")
    c = await directory.add_employee(EmployeeInput("C@MOH.gov.example", "moh", "C"), actor="t")
    assert [a["code"], b["code"], c["code"]] == [
        str(EmployeeCode("MOH", 1)), str(EmployeeCode("MOH-BGD", 1)), str(EmployeeCode("MOH", 2))
    ]  # fmt: skip
    assert c["address"] == "c@moh.gov.example"
    # A refused add consumes no serial.
    with pytest.raises(DirectoryError):
        await directory.add_employee(EmployeeInput("a@moh.gov.example", "MOH", "dup"), actor="t")
    d = await directory.add_employee(EmployeeInput("d@moh.gov.example", "MOH", "D"), actor="t")
    assert d["code"] == str(EmployeeCode("MOH", 3))


async def test_concurrent_adds_get_unique_gap_free_codes(directory: Directory) -> None:
    await seed(directory)
    results = await asyncio.gather(
        *(
            directory.add_employee(
                EmployeeInput(f"e{i}@moh.gov.example", "MOH", f"E{i}"), actor="t"
            )
            for i in range(12)
        )
    )
    serials = sorted(EmployeeCode.parse(r["code"]).serial for r in results)
    assert serials == list(range(1, 13))


async def count_state(d: Directory) -> tuple[int, int, int]:
    async with d._sessions() as s:
        employees = await s.scalar(select(func.count()).select_from(Employee))
        events = await s.scalar(select(func.count()).select_from(AuditEvent))
    return int(employees or 0), int(events or 0), len((await d.snapshot()).agencies)


@pytest.mark.parametrize(
    "change",
    [
        "duplicate_address",
        "unknown_parent",
        "unknown_agency",
        "cycle",
        "confusable_code",
        "foreign_domain",
        "bad_kind",
        "bad_clearance",
        "bad_address",
        "duplicate_agency",
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(directory: Directory, change: str) -> None:
    await seed(directory)
    await directory.add_employee(EmployeeInput("a@moh.gov.example", "MOH", "A"), actor="t")
    before = await count_state(directory)
    version = await directory.version()
    attempts = {
        "duplicate_address": directory.add_employee(EmployeeInput("A@moh.gov.example", "MOH", "x"), actor="t"),
        "unknown_parent": directory.add_agency(AgencyInput("MOX", "x", "", "ministry", "x.gov.example", "NOPE"), actor="t"),
        "unknown_agency": directory.add_employee(EmployeeInput("z@moh.gov.example", "NOPE", "x"), actor="t"),
        "cycle": directory.set_parent("MOH", "MOH-BGD", actor="t"),
        "confusable_code": directory.add_agency(AgencyInput("MOHBGD", "x", "", "ministry", "x.gov.example"), actor="t"),
        "foreign_domain": directory.add_employee(EmployeeInput("z@evil.example", "MOH", "x"), actor="t"),
        "bad_kind": directory.add_agency(AgencyInput("MOX", "x", "", "castle", "x.gov.example"), actor="t"),
        "bad_clearance": directory.add_employee(EmployeeInput("z@moh.gov.example", "MOH", "x", clearance="top"), actor="t"),
        "bad_address": directory.add_employee(EmployeeInput("not an address", "MOH", "x"), actor="t"),
        "duplicate_agency": directory.add_agency(AgencyInput("moh", "x", "", "ministry", "x.gov.example"), actor="t"),
    }  # fmt: skip
    chosen = attempts.pop(change)
    for other in attempts.values():
        other.close()
    with pytest.raises(DirectoryError) as err:
        await chosen
    assert str(err.value) and "Traceback" not in str(err.value)
    assert await count_state(directory) == before
    assert await directory.version() == version


async def test_snapshot_reflects_the_tree(directory: Directory) -> None:
    await seed(directory)
    await directory.add_employee(
        EmployeeInput("a@moh.gov.example", "MOH-BGD", "A", clearance="secret"), actor="t"
    )
    snap = await directory.snapshot()
    assert snap.ancestors["MOH-BGD"] == ("MOH",)
    assert snap.in_subtree("MOH-BGD", "MOH") and not snap.in_subtree("MOH", "MOH-BGD")
    emp = snap.employee("A@moh.gov.example")
    assert emp is not None and emp.agency == "MOH-BGD" and emp.clearance.label == "secret"
    await directory.set_status("a@moh.gov.example", EmployeeStatus.SUSPENDED, actor="t")
    emp = (await directory.snapshot()).employee("a@moh.gov.example")
    assert emp is not None and emp.status is EmployeeStatus.SUSPENDED


async def test_audit_chain_detects_changes_and_deletions(directory: Directory) -> None:
    await seed(directory)
    for i in range(5):
        await directory.add_employee(EmployeeInput(f"e{i}@moh.gov.example", "MOH", "E"), actor="t")
    sessions = directory._sessions
    async with sessions() as s:
        report = await audit.verify(s, KEY)
    assert report.ok and report.events == 7
    async with sessions() as s:
        assert not (await audit.verify(s, os.urandom(32))).ok  # another key: forged

    async def tampered(stmt) -> list[str]:  # type: ignore[no-untyped-def]
        async with sessions() as s, s.begin():
            await s.execute(stmt)
        async with sessions() as s:
            return (await audit.verify(s, KEY)).problems

    problems = await tampered(
        update(AuditEvent).where(AuditEvent.id == 3).values(details='{"code":"MOH-000009-X"}')
    )
    assert any("event 3" in p for p in problems)


@pytest.mark.parametrize("victim", [4, 7])
async def test_audit_chain_detects_a_deleted_event(directory: Directory, victim: int) -> None:
    await seed(directory)
    for i in range(5):
        await directory.add_employee(EmployeeInput(f"e{i}@moh.gov.example", "MOH", "E"), actor="t")
    async with directory._sessions() as s, s.begin():
        await s.execute(AuditEvent.__table__.delete().where(AuditEvent.id == victim))
    async with directory._sessions() as s:
        report = await audit.verify(s, KEY)
    assert not report.ok, report
