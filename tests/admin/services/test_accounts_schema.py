"""Migration 0006 (admin accounts) on SQLite and PostgreSQL: up, down to 0005, up; the
schema equals the models; secrets cannot be stored twice; grants are unique per scope."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import migrate
from gateway.store.admin_models import AdminGrant
from gateway.store.db import create_engine
from gateway.store.models import Base

ADMIN_TABLES = {
    "admin_grants", "admin_totp", "admin_totp_steps", "admin_recovery_codes",
    "admin_tokens", "admin_sessions",
}  # fmt: skip


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
    return set(names)


async def test_0006_up_down_up_matches_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        for _ in range(2):
            await migrate.upgrade(engine)  # head: every model is migrated
            assert await tables(engine) >= ADMIN_TABLES
            async with engine.connect() as conn:
                diff = await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
            assert diff == [], diff
            await migrate.downgrade(engine, "0005")
            assert await migrate.current_revision(engine) == "0005"
            assert not (await tables(engine)) & ADMIN_TABLES
    finally:
        await engine.dispose()


async def test_a_role_is_granted_once_per_scope(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO agencies (id, code, code_key, name_en, name_ar, kind, domain,"
                " status, next_employee_serial, created_at) VALUES"
                " (1, 'MOF', 'MOF', 'F', 'F', 'ministry', 'mof.example', 'active', 2, 'now')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO employees (id, address, agency_id, name_en, name_ar, role,"
                " clearance, status, serial, code, created_at) VALUES"
                " (1, 'a@mof.example', 1, 'A', 'A', 'staff', 1, 'active', 1, 'MOF-1', 'now')"
            )
        row = {"employee_id": 1, "role": "system-admin", "scope": "", "agency_id": None,
               "granted_by": "t", "granted_at": "now"}  # fmt: skip
        async with engine.begin() as conn:
            await conn.execute(insert(AdminGrant), [row])
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert(AdminGrant), [row])
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert(AdminGrant), [{**row, "role": "emperor"}])
    finally:
        await engine.dispose()
