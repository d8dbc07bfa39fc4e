"""Migrations 0002-0007 on SQLite and PostgreSQL: up, down, up; the schema equals the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store import migrate
from gateway.store.db import create_engine
from gateway.store.models import Base

NEW_TABLES = {
    "registry_counters", "blobs", "messages", "message_documents", "message_copies",
    "delivery_queue", "inbound_copies", "relay_outbox", "policy_versions",
}  # fmt: skip


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
    return set(names)


async def schema_diff(engine: AsyncEngine) -> list[object]:
    async with engine.connect() as conn:
        diff: list[object] = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
        )
    return diff


async def index_names(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda sync: sync.dialect.get_indexes(sync, table))
    return {str(i["name"]) for i in found}


async def test_0002_up_down_up_matches_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        for _ in range(2):
            await migrate.upgrade(engine)
            assert await migrate.current_revision(engine) == migrate.head_revision()
            assert await tables(engine) >= NEW_TABLES
            assert await schema_diff(engine) == []
            assert "ix_delivery_queue_state_next_attempt_at" in await index_names(
                engine, "delivery_queue"
            )
            assert "ix_message_documents_sha256" in await index_names(engine, "message_documents")
            assert "ix_messages_sender_address_accepted_at" in await index_names(engine, "messages")
            await migrate.downgrade(engine, "0001")
            assert await migrate.current_revision(engine) == "0001"
            left = await tables(engine)
            assert not (NEW_TABLES & left) and {"agencies", "audit_events"} <= left
        await migrate.downgrade(engine, "base")
        assert await tables(engine) <= {"alembic_version"}
        await migrate.upgrade(engine)
        assert await schema_diff(engine) == []
    finally:
        await engine.dispose()
