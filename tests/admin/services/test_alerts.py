"""Alerts through the service layer on a real data dir: the alerts are written by the
gateway's own sinks (the verification radar's, the login lockout events') or, for a
peer's TLS trouble, appended under the relay's action name; then listed by kind,
time and acknowledgement, and acknowledged (once, audited) as each role."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from admin.context import open_app
from admin.services import alerts
from admin.services.actor import Forbidden
from admin.services.errors import InvalidInput, NotFound
from gateway.config import load_settings
from gateway.delivery.relay import TLS_ALERT_ACTION
from gateway.intake.lockout_events import LockoutEvents, audit_lockouts
from gateway.intake.smtp.throttle import Lockout
from gateway.store import audit
from gateway.store.db import transaction
from gateway.store.models import AuditEvent
from gateway.verification.radar import Alert, audit_alerts
from testkit.admin_use_cases import ACTORS, ADMIN, AUDITOR, TAX_CLERK, World, populate

Kind = alerts.AlertKind


@dataclass
class Raised:
    world: World
    spike: int  # the world's forged-token spike
    document: int  # a document spike about the world's MOF-TAX message
    lockout: int
    tls: int


async def _last_id(world: World) -> int:
    async with world.app.sessions() as session:
        return await audit.chain_length(session)


async def _events(world: World) -> int:
    async with world.app.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


@pytest.fixture
async def raised(barid: object, tmp_path: Path) -> AsyncIterator[Raised]:
    settings = load_settings(str(tmp_path / "data" / "barid.toml"), environ={})
    async with open_app(settings) as app:
        world = await populate(app, tmp_path / "data")
        spike = Alert("document-spike", 201, 600, ("198.51.100.1",), world.tax_message)
        await audit_alerts(app.sessions, app.audit_key)(spike)
        document = await _last_id(world)
        events = LockoutEvents(audit_lockouts(app.sessions, app.audit_key))
        events.report([Lockout("account-address", TAX_CLERK, "198.51.100.9", 10)], "imap")
        await events.drain()
        lockout = await _last_id(world)
        details = {"remote": "192.0.2.80", "error": "certificate fingerprint mismatch",
                   "password": "not to be shown"}  # fmt: skip
        async with transaction(app.sessions) as session:
            await audit.append(session, app.audit_key, actor="gateway", action=TLS_ALERT_ACTION,
                               target="peer:moi", outcome="alert", details=details)  # fmt: skip
        yield Raised(world, world.alert, document, lockout, await _last_id(world))


async def test_each_kind_is_listed_newest_first_with_its_facts_only(raised: Raised) -> None:
    app = raised.world.app
    found = await alerts.list_alerts(AUDITOR, app, alerts.AlertQuery())
    assert [a.id for a in found] == [raised.tls, raised.lockout, raised.document, raised.spike]
    assert [a.kind for a in found] == [
        Kind.PEER_TLS, Kind.LOGIN_LOCKOUT, Kind.VERIFICATION_SPIKE, Kind.VERIFICATION_SPIKE,
    ]  # fmt: skip
    tls, lockout, document, spike = found
    assert tls.subject == "peer:moi"
    assert tls.facts == {"remote": "192.0.2.80", "error": "certificate fingerprint mismatch"}
    assert "not to be shown" not in tls.model_dump_json()
    assert lockout.subject == TAX_CLERK
    assert lockout.facts == {"kind": "account-address", "failures": 10, "protocol": "imap",
                             "client": "198.51.100.9"}  # fmt: skip
    assert document.subject == raised.world.tax_message
    assert document.facts["kind"] == "document-spike" and document.facts["count"] == 201
    assert spike.facts["clients"] == ["203.0.113.7", "203.0.113.8"] and spike.subject == ""
    assert all(a.description and a.acknowledgement is None for a in found)
    assert {info.kind for info in alerts.KINDS.values()} == set(Kind)


async def test_filters_and_paging(raised: Raised) -> None:
    app = raised.world.app

    async def ids(**query: object) -> list[int]:
        return [a.id for a in await alerts.list_alerts(ADMIN, app, alerts.AlertQuery(**query))]

    assert await ids(kind=Kind.VERIFICATION_SPIKE) == [raised.document, raised.spike]
    assert await ids(kind=Kind.LOGIN_LOCKOUT) == [raised.lockout]
    assert await ids(limit=2) == [raised.tls, raised.lockout]
    assert await ids(limit=2, before=raised.lockout) == [raised.document, raised.spike]
    assert await ids(since="1h", until="2999-01-01") == await ids()
    assert await ids(until="2000-01-01") == []
    assert await ids(acknowledged=True) == []
    assert len(await ids(acknowledged=False)) == 4
    for bad in ({"since": "whenever"}, {"until": "later"}, {"limit": 0}, {"limit": 1001}):
        with pytest.raises(InvalidInput):
            await ids(**bad)


async def test_acknowledge_once_audited_then_idempotent(raised: Raised) -> None:
    app = raised.world.app
    before = await _events(raised.world)
    ack = await alerts.acknowledge(AUDITOR, app, raised.lockout, "  called the clerk  ")
    assert (ack.alert_id, ack.by, ack.role, ack.note) == (
        raised.lockout, AUDITOR.account, "security-auditor", "called the clerk",
    )  # fmt: skip
    assert await _events(raised.world) == before + 1
    async with app.sessions() as session:
        event = await session.get(AuditEvent, ack.event_id)
    assert event is not None and event.action == alerts.ACK_ACTION
    assert event.actor == AUDITOR.account and event.target == str(raised.lockout)
    details = json.loads(event.details)
    assert details["note"] == "called the clerk" and details["kind"] == "login-lockout"
    assert details["acting"] == {"role": "security-auditor", "client": "192.0.2.3",
                                 "channel": "cli"}  # fmt: skip
    again = await alerts.acknowledge(ADMIN, app, raised.lockout, "a different note")
    assert again == ack and await _events(raised.world) == before + 1
    listed = await alerts.list_alerts(ADMIN, app, alerts.AlertQuery(acknowledged=True))
    assert [a.id for a in listed] == [raised.lockout] and listed[0].acknowledgement == ack
    still_open = await alerts.list_alerts(ADMIN, app, alerts.AlertQuery(acknowledged=False))
    assert raised.lockout not in [a.id for a in still_open] and len(still_open) == 3
    async with app.sessions() as session:
        report = await audit.verify(session, app.audit_key)
    assert report.ok, report.problems


async def test_concurrent_acknowledgements_write_one_event(raised: Raised) -> None:
    app = raised.world.app
    before = await _events(raised.world)
    first, second = await asyncio.gather(
        alerts.acknowledge(AUDITOR, app, raised.tls, "mine"),
        alerts.acknowledge(ADMIN, app, raised.tls, "no, mine"),
    )
    assert first == second and await _events(raised.world) == before + 1


async def test_unknown_ids_non_alerts_and_bad_notes_change_nothing(raised: Raised) -> None:
    app = raised.world.app
    ack = await alerts.acknowledge(ADMIN, app, raised.spike)
    assert ack.note == ""
    before = await _events(raised.world)
    for alert_id in (0, -1, 10**6, 2**70, 1, ack.event_id):  # 1: not an alert; nor an ack
        with pytest.raises(NotFound):
            await alerts.acknowledge(ADMIN, app, alert_id, "x")
    for note in ("two\nlines", "tab\there", "x" * 501):
        with pytest.raises(InvalidInput):
            await alerts.acknowledge(ADMIN, app, raised.tls, note)
    assert await _events(raised.world) == before


@pytest.mark.parametrize("who", ["agency-admin", "registrar"])
async def test_scoped_roles_neither_read_nor_acknowledge(raised: Raised, who: str) -> None:
    app, actor = raised.world.app, ACTORS[who]
    before = await _events(raised.world)
    with pytest.raises(Forbidden):
        await alerts.list_alerts(actor, app, alerts.AlertQuery())
    with pytest.raises(Forbidden):
        await alerts.acknowledge(actor, app, raised.tls, "seen")
    with pytest.raises(Forbidden):  # the role is refused before the id is looked at
        await alerts.acknowledge(actor, app, 10**6, "seen")
    assert await _events(raised.world) == before
