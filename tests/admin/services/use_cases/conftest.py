"""A real initialised data dir (SQLite) with a small directory, two accepted messages
and their queue entries, for calling the service layer directly as each role.

MOF (ministry) > MOF-TAX (directorate) is the subtree of the scoped actors;
MOH (ministry) lies outside it. One message was issued by MOF-TAX, one by MOH.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.context import open_app
from gateway.config import load_settings
from gateway.store import audit
from gateway.store.db import transaction
from gateway.store.queue import QueueAdmin
from testkit.admin_use_cases import (
    MOH_DOCTOR,
    MOH_NURSE,
    TAX_CLERK,
    World,
    accept,
    access_event,
    seed,
)


@pytest.fixture
async def world(barid: object, tmp_path: Path) -> AsyncIterator[World]:
    """`barid init` done by the `barid` fixture; the app opened on its data dir."""
    settings = load_settings(str(tmp_path / "data" / "barid.toml"), environ={})
    async with open_app(settings) as app:
        await seed(app)
        tax = await accept(app, TAX_CLERK, "MOF-TAX", MOH_DOCTOR)
        moh = await accept(app, MOH_DOCTOR, "MOH", TAX_CLERK)
        entries = {e.registry: e.id for e in await QueueAdmin(app.sessions, app.audit_key).list()}
        async with transaction(app.sessions) as session:
            await audit.append_many(
                session,
                app.audit_key,
                [
                    access_event(MOH_DOCTOR, tax),  # an outsider reads the subtree's message
                    access_event(TAX_CLERK, moh),  # an insider reads an outside message
                    access_event(MOH_NURSE, moh),  # nothing to do with the subtree
                ],
            )
        yield World(app, tmp_path / "data", tax, moh, entries[tax], entries[moh])
