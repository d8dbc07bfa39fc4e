"""Routes of alerts over real HTTP with real API tokens: listing (filters, paging
newest first), acknowledging (audited once; a retry answers the same
acknowledgement), and the roles that may not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.delivery.relay import TLS_ALERT_ACTION
from gateway.intake.lockout_events import LockoutEvents, audit_lockouts
from gateway.intake.smtp.throttle import Lockout
from gateway.store import audit
from gateway.store.db import transaction
from testkit.admin_api_server import Served, served_world


@pytest.fixture
async def api(barid: object, tmp_path: Path) -> AsyncIterator[Served]:
    async with served_world(tmp_path / "data") as served:
        app = served.world.app
        events = LockoutEvents(audit_lockouts(app.sessions, app.audit_key))
        events.report([Lockout("address", "", "198.51.100.9", 30)], "smtp")
        await events.drain()
        details = {"remote": "192.0.2.80", "error": "untrusted certificate",
                   "secret": "never shown"}  # fmt: skip
        async with transaction(app.sessions) as session:
            await audit.append(session, app.audit_key, actor="gateway", action=TLS_ALERT_ACTION,
                               target="peer:moi", outcome="alert", details=details)  # fmt: skip
        yield served


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return dict(response.json())


async def _audit_acks(api: Served) -> list[dict[str, Any]]:
    async with api.client("system-admin") as admin:
        found = await admin.get("/audit/events", params={"kind": "alert.ack"})
        return list(found.json()["items"])


async def test_list_filters_and_pages_newest_first(api: Served) -> None:
    async with api.client("security-auditor") as auditor:
        response = await auditor.get("/alerts")
        assert response.status_code == 200, response.text
        assert "never shown" not in response.text
        items = response.json()["items"]
        assert [a["kind"] for a in items] == ["peer-tls", "login-lockout", "verification-spike"]
        assert items[2]["id"] == api.world.alert and items[0]["subject"] == "peer:moi"
        assert items[1]["facts"]["client"] == "198.51.100.9"
        assert all(a["acknowledgement"] is None and a["description"] for a in items)
        first = (await auditor.get("/alerts", params={"limit": 2})).json()
        rest = (await auditor.get("/alerts", params={"limit": 2, "cursor": first["next"]})).json()
        assert [a["id"] for a in first["items"] + rest["items"]] == [a["id"] for a in items]
        assert rest["next"] is None
        tls = (await auditor.get("/alerts", params={"kind": "peer-tls"})).json()["items"]
        assert [a["kind"] for a in tls] == ["peer-tls"]
        old = (await auditor.get("/alerts", params={"until": "2000-01-01"})).json()
        assert old["items"] == []
        problem(await auditor.get("/alerts", params={"kind": "volcano"}), 422)
        problem(await auditor.get("/alerts", params={"since": "whenever"}), 422)
        problem(await auditor.get("/alerts", params={"cursor": first["next"] + "x"}), 400)


async def test_an_auditor_acknowledges_once_and_a_retry_answers_the_same(api: Served) -> None:
    alert = api.world.alert
    path = f"/alerts/{alert}/acknowledgement"
    async with api.client("security-auditor") as auditor:
        me = (await auditor.get("/whoami")).json()["account"]
        first = await auditor.post(path, json={"note": "forged tokens: reported"})
        assert first.status_code == 200, first.text
        ack = first.json()
        assert (ack["alert_id"], ack["by"], ack["role"], ack["note"]) == (
            alert, me, "security-auditor", "forged tokens: reported",
        )  # fmt: skip
        assert (await auditor.post(path, json={"note": "again"})).json() == ack
        assert (await auditor.post(path)).json() == ack
        still_open = (await auditor.get("/alerts", params={"acknowledged": "false"})).json()
        assert alert not in [a["id"] for a in still_open["items"]]
        done = (await auditor.get("/alerts", params={"acknowledged": "true"})).json()["items"]
        assert [a["id"] for a in done] == [alert] and done[0]["acknowledgement"] == ack
    acks = await _audit_acks(api)
    assert len(acks) == 1 and acks[0]["target"] == str(alert) and acks[0]["actor"] == me
    assert acks[0]["details"]["acting"]["channel"] == "api"


async def test_refusals_change_nothing(api: Served) -> None:
    async with api.client("system-admin") as admin:
        everything = (await admin.get("/audit/events", params={"limit": 1})).json()["items"]
        newest = everything[0]["id"]
        problem(await admin.post("/alerts/999999/acknowledgement", json={}), 404)
        problem(await admin.post("/alerts/1/acknowledgement", json={}), 404)  # not an alert
        problem(await admin.post("/alerts/0/acknowledgement", json={}), 422)
        problem(await admin.post(f"/alerts/{api.world.alert}/acknowledgement",
                                 json={"note": "x" * 501}), 422)  # fmt: skip
        problem(await admin.post(f"/alerts/{api.world.alert}/acknowledgement",
                                 json={"note": "two\nlines"}), 422)  # fmt: skip
    for role in ("agency-admin", "registrar"):
        async with api.client(role) as other:
            problem(await other.get("/alerts"), 403)
            problem(await other.post(f"/alerts/{api.world.alert}/acknowledgement", json={}), 403)
    async with api.client("system-admin") as admin:
        after = (await admin.get("/audit/events", params={"limit": 1})).json()["items"]
    assert after[0]["id"] == newest
