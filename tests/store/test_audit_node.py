"""The node id (`server.node_id`) in audit events, the access trail and log lines:
recorded, covered by the event's MAC (changed or removed: detected), and events
from before the column (no node, eight-element MAC) still verify."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config.sections import ServerSettings
from gateway.logs import JsonFormatter, node_name
from gateway.store import audit, migrate
from gateway.store.access_trail import ACCESS_ACTION, access_entries
from gateway.store.db import create_engine, session_factory, transaction
from gateway.store.models import AuditEvent, AuditHead

KEY = os.urandom(32)
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def node_b() -> Iterator[str]:
    before = audit.node()
    audit.set_node("node-b")
    yield "node-b"
    audit.set_node(before)


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(db_url)
    await migrate.upgrade(engine)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def problems(sessions: Sessions) -> list[str]:
    async with sessions() as s:
        return (await audit.verify(s, KEY)).problems


async def test_events_and_accesses_name_their_node(sessions: Sessions, node_b: str) -> None:
    async with transaction(sessions) as s:
        await audit.append(s, KEY, actor="t", action="test.one")
        await audit.append_many(s, KEY, [
            audit.Event(actor="clerk@moh.gov.xx", action=ACCESS_ACTION, target="MOH/2026/000001",
                        details={"trace": "AAAAA-11111", "protocol": "imaps"}),
        ])  # fmt: skip
    async with sessions() as s:
        listed = await audit.recent(s)
        accesses = await access_entries(s)
    assert [e["node"] for e in listed] == [node_b, node_b]
    assert [a.node for a in accesses] == [node_b] and accesses[0].as_dict()["node"] == node_b
    assert await problems(sessions) == []


@pytest.mark.parametrize("forged", ["node-a", None])
async def test_changing_or_removing_the_node_is_detected(
    sessions: Sessions, node_b: str, forged: str | None
) -> None:
    async with transaction(sessions) as s:
        await audit.append_many(s, KEY, [audit.Event(actor="t", action="x")] * 3)
    async with transaction(sessions) as s:
        await s.execute(update(AuditEvent).where(AuditEvent.id == 2).values(node=forged))
    assert await problems(sessions) == ["event 2: content changed (MAC mismatch)"]


async def test_events_from_before_nodes_still_verify(sessions: Sessions) -> None:
    """An event written as before the column (eight-element MAC, no node), then new ones."""
    at = "2026-01-01T00:00:00.000000Z"
    mac = audit.event_mac(KEY, event_id=1, at=at, actor="t", action="old", target="", outcome="ok",
                          details="{}", prev_mac=audit.GENESIS_MAC)  # fmt: skip
    async with transaction(sessions) as s:
        s.add(AuditEvent(id=1, at=at, actor="t", action="old", target="", outcome="ok",
                         details="{}", prev_mac=audit.GENESIS_MAC, mac=mac))  # fmt: skip
        await s.execute(update(AuditHead).values(last_id=1, last_mac=mac, count=1))
    async with transaction(sessions) as s:
        await audit.append(s, KEY, actor="t", action="new")
    assert await problems(sessions) == []
    async with transaction(sessions) as s:  # giving the old event a node is tampering too
        await s.execute(update(AuditEvent).where(AuditEvent.id == 1).values(node="node-a"))
    assert await problems(sessions) == ["event 1: content changed (MAC mismatch)"]


def test_node_id_setting_and_log_lines() -> None:
    assert ServerSettings(node_id="gw-2").node_id == "gw-2"
    assert node_name("gw-2") == "gw-2" and node_name("") == node_name() != ""
    for bad in ("two words", "x" * 65):
        with pytest.raises(ValidationError):
            ServerSettings(node_id=bad)
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "barid.t"})
    assert json.loads(JsonFormatter("gw-2").format(record))["node"] == "gw-2"
