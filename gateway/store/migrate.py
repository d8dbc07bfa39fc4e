"""Schema migrations (Alembic), run programmatically on our async engine.

Owns: upgrade / downgrade / current revision. Must not: be skipped — every
table comes from a migration, from the first one on; `barid init` calls
`upgrade(engine)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.db import WRITE

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Any | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.execution_options(**WRITE).begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.execution_options(**WRITE).begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        rev: str | None = await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
        return rev
