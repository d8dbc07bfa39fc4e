"""The alert evaluator on a real database: one audit event and one metric
increment per alert, never a second one for the same subject and window, new
events only after the first scan, and the webhook delivered to a real local
HTTP server (a failing one is counted, never raised)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin.demo_data import EMPLOYEES
from gateway import metrics
from gateway.alerts import kinds
from gateway.alerts.evaluator import AlertEvaluator
from gateway.alerts.rules import ACCESS_ACTION
from gateway.config import AlertsSettings
from gateway.store import audit, migrate
from gateway.store.access_trail import stored_time
from gateway.store.audit_alerts import alert_events
from gateway.store.db import create_engine, session_factory, transaction
from testkit.ports import free_port

KEY = os.urandom(32)
NOW = dt.datetime(2026, 11, 17, 9, 0, tzinfo=dt.UTC)  # a Tuesday, 12:00 in Riyadh
WHO = "clerk@moh.gov.example"
ACTIVE = [row[0] for row in EMPLOYEES if row[6] == "active"]


def count(kind: str) -> float:
    value = metrics.REGISTRY.get_sample_value("barid_alerts_total", {"kind": kind})
    return value or 0.0


def webhooks(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value("barid_alert_webhooks_total", {"outcome": outcome})
    return value or 0.0


class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]
    status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[str, type[Hook]]]:
    handler = type("Handler", (Hook,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/alerts", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(db_url)
    await migrate.upgrade(engine)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def reads(
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    who: str,
    at: dt.datetime,
    n: int,
    client: str = "10.1.0.20",
) -> None:
    times = [stored_time(at + dt.timedelta(seconds=i)) for i in range(n)]
    monkeypatch.setattr(audit, "utcnow", lambda: times.pop(0))
    events = [
        audit.Event(actor=who, action=ACCESS_ACTION, target=f"MOH/2026/{i:06d}",
                    details={"client": client, "protocol": "imaps", "trace": None})
        for i in range(n)
    ]  # fmt: skip
    async with transaction(sessions) as session:
        await audit.append_many(session, KEY, events)
    monkeypatch.undo()


async def history(sessions: async_sessionmaker[AsyncSession], mp: pytest.MonkeyPatch) -> None:
    for days in range(1, 15):
        day = NOW - dt.timedelta(days=days)
        for i, who in enumerate(ACTIVE):
            await reads(sessions, mp, who, day, 4 + i % 5, client=f"10.1.{i}.20")


async def alerts(sessions: async_sessionmaker[AsyncSession]) -> list[Any]:
    async with sessions() as session:
        return await alert_events(session, list(kinds.KINDS), limit=100)


async def test_one_event_one_increment_one_webhook_per_alert(
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    hook_server: tuple[str, type[Hook]],
) -> None:
    url, hook = hook_server
    settings = AlertsSettings(webhook_url=url, webhook_timeout_seconds=2.0)
    await history(sessions, monkeypatch)
    evaluator = AlertEvaluator(settings, sessions, KEY)

    first = await evaluator.scan(now=NOW)  # a normal fortnight: quiet
    assert first.raised == () and first.events > 0
    assert await alerts(sessions) == []

    before = count("body-volume"), count("new-client"), webhooks("delivered")
    await reads(sessions, monkeypatch, WHO, NOW, 90, client="203.0.113.9")
    result = await evaluator.scan(now=NOW)
    await evaluator.stop()  # drains the webhook
    found = {(r.fired.kind.value, r.fired.subject) for r in result.raised}
    assert found == {("body-volume", WHO), ("new-client", WHO)}
    written = await alerts(sessions)
    assert {(e.action, e.target) for e in written} == {
        (kinds.BODY_VOLUME_ACTION, WHO),
        (kinds.NEW_CLIENT_ACTION, WHO),
    }
    assert all(e.details["window"] in ("2026-11-17", "203.0.113.9") for e in written)
    assert (count("body-volume"), count("new-client"), webhooks("delivered")) == (
        before[0] + 1,
        before[1] + 1,
        before[2] + 2,
    )
    assert sorted(m["body"]["kind"] for m in hook.received) == ["body-volume", "new-client"]
    assert {m["type"] for m in hook.received} == {"application/json"}
    assert {m["body"]["id"] for m in hook.received} == {e.id for e in written}

    # More reads in the same day: the same windows, nothing written again; a fresh
    # evaluator (a restart) has nothing new to read, and one evaluating the day
    # again (`since`) finds the alerts in the trail.
    await reads(sessions, monkeypatch, WHO, NOW + dt.timedelta(hours=1), 30, client="203.0.113.9")
    assert (await evaluator.scan(now=NOW)).raised == ()
    restarted = await AlertEvaluator(settings, sessions, KEY).scan(now=NOW)
    assert restarted.raised == () and restarted.events == 0
    again = await AlertEvaluator(settings, sessions, KEY).scan(since=NOW, now=NOW)
    assert again.raised == () and again.fired == 2
    assert len(await alerts(sessions)) == 2
    assert count("body-volume") == before[0] + 1
    async with sessions() as session:
        assert (await audit.verify(session, KEY)).ok


async def test_scan_since_covers_events_from_that_time(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    await history(sessions, monkeypatch)
    late = NOW.replace(hour=19)  # 22:00 in Riyadh
    await reads(sessions, monkeypatch, "registrar@moh.gov.example", late, 25, client="10.1.4.20")
    evaluator = AlertEvaluator(AlertsSettings(), sessions, KEY)
    assert (await evaluator.scan(since=late + dt.timedelta(minutes=5), now=NOW)).raised == ()
    result = await evaluator.scan(since=late, now=NOW)
    assert [(r.fired.kind.value, r.fired.window) for r in result.raised] == [
        ("after-hours", "2026-11-17")
    ]
    assert await evaluator.position() == 0  # an on-demand scan leaves the durable position


async def test_a_webhook_that_fails_is_counted_and_never_raised(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nothing-listens"
    evaluator = AlertEvaluator(
        AlertsSettings(webhook_url=dead, webhook_timeout_seconds=1.0, denials=1), sessions, KEY
    )
    times = [stored_time(NOW)]
    monkeypatch.setattr(audit, "utcnow", lambda: times.pop(0) if times else stored_time(NOW))
    async with transaction(sessions) as session:
        await audit.append(session, KEY, actor="submission", action="message.reject",
                           target="x@moh.gov.example", outcome="refused",
                           details={"reason": "policy", "rule": "r1"})  # fmt: skip
    failed = webhooks("failed")
    result = await asyncio.wait_for(evaluator.scan(now=NOW), 5)
    assert [r.fired.kind.value for r in result.raised] == ["policy-denials"]
    await evaluator.stop()
    assert webhooks("failed") == failed + 1
