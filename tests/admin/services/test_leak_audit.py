"""Every leak trace is audited on a real data dir: one `leak.trace` event per trace,
answered or refused (no match, out of scope, a role that may not trace, an input
that cannot be read), naming who traced, the input's kind and SHA-256, the outcome
and the copy found; never the input itself. The audit chain stays intact."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from admin.context import open_app
from admin.services import leaks
from admin.services.actor import Actor, Forbidden, Role
from admin.services.errors import InvalidInput, NotFound
from admin.services.leak_audit import TRACE_ACTION
from gateway.config import load_settings
from gateway.store import audit
from gateway.store.models import AuditEvent
from testkit.admin_use_cases import AUDITOR, MOF_REGISTRAR
from testkit.leak_world import RECIPIENTS, LeakWorld, leak_world, misread

MOH_ADMIN = Actor("boss@moh.gov.example", Role.AGENCY_ADMIN, agency="MOH", client="203.0.113.9",
                  channel="web")  # fmt: skip


@pytest.fixture
async def world(barid: object, tmp_path: Path) -> AsyncIterator[LeakWorld]:
    settings = load_settings(str(tmp_path / "data" / "barid.toml"), environ={})
    async with open_app(settings) as app:
        yield await leak_world(app)


async def _events(world: LeakWorld) -> list[tuple[AuditEvent, dict[str, Any]]]:
    async with world.app.sessions() as session:
        rows = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == TRACE_ACTION).order_by(AuditEvent.id)
            )
        ).all()
    return [(row, json.loads(row.details)) for row in rows]


async def test_an_answered_trace_is_one_event(world: LeakWorld) -> None:
    recipient = RECIPIENTS[3]
    typed = misread(world.codes[recipient])
    await leaks.trace_leak(AUDITOR, world.app, typed)
    [(event, details)] = await _events(world)
    assert (event.actor, event.outcome, event.target) == (AUDITOR.account, "ok", world.registry)
    assert details["kind"] == "code"
    assert details["sha256"] == hashlib.sha256(typed.encode()).hexdigest()
    assert details["copies"] == [
        {"registry": world.registry, "trace_code": world.codes[recipient], "recipient": recipient}
    ]
    assert details["recipient_named"] is True
    assert details["acting"]["role"] == "security-auditor"
    assert typed not in event.details and typed.upper() not in event.details
    # The web form's use case is audited the same way.
    await leaks.trace_code(AUDITOR, world.app, typed)
    assert len(await _events(world)) == 2


async def test_a_document_trace_names_every_copy(world: LeakWorld, tmp_path: Path) -> None:
    leaked = tmp_path / "secret-plans.pdf"
    leaked.write_bytes(world.document)
    await leaks.trace_leak(AUDITOR, world.app, str(leaked))
    [(event, details)] = await _events(world)
    assert details["kind"] == "document" and details["recipient_named"] is False
    assert details["sha256"] == hashlib.sha256(world.document).hexdigest()
    assert sorted(c["recipient"] for c in details["copies"]) == sorted(RECIPIENTS)
    assert "secret-plans" not in event.details and "leak test" not in event.details


async def test_refused_traces_are_audited(world: LeakWorld, tmp_path: Path) -> None:
    code = world.codes[RECIPIENTS[0]]
    with pytest.raises(NotFound):
        await leaks.trace_leak(AUDITOR, world.app, "hello")
    with pytest.raises(NotFound):  # outside the caller's scope: as nothing matched
        await leaks.trace_leak(MOH_ADMIN, world.app, code.lower())
    with pytest.raises(Forbidden):
        await leaks.trace_leak(MOF_REGISTRAR, world.app, code)
    with pytest.raises(InvalidInput):
        await leaks.trace_leak(AUDITOR, world.app, str(tmp_path / "missing.eml"))
    events = await _events(world)
    assert [(e.actor, e.outcome, e.target) for e, _d in events] == [
        (AUDITOR.account, "no-match", ""),
        (MOH_ADMIN.account, "no-match", ""),
        (MOF_REGISTRAR.account, "refused", ""),
        (AUDITOR.account, "refused", ""),
    ]
    assert [d["kind"] for _e, d in events] == ["code", "code", "code", "file"]
    assert all(d["copies"] == [] for _e, d in events)
    assert events[0][1]["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert events[1][1]["acting"] == {"role": "agency-admin", "client": "203.0.113.9",
                                      "channel": "web"}  # fmt: skip
    assert events[3][1]["sha256"] is None
    text = " ".join(e.details for e, _d in events)
    assert "hello" not in text and code not in text and code.lower() not in text
    assert "missing" not in text
    async with world.app.sessions() as session:
        assert (await audit.verify(session, world.app.audit_key)).ok
