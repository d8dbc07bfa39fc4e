"""Routes of the routing policy over real HTTP: versions, validate, apply, explain,
case tables and audit-mode hits, as each role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.store import audit
from gateway.store.db import transaction
from testkit.admin_api_server import Served, served_world
from testkit.admin_policies import BROKEN, CASES, CHANGED, POLICY
from testkit.admin_use_cases import MOH_DOCTOR, TAX_CLERK

TEXT = {"content-type": "text/plain; charset=utf-8"}


@pytest.fixture
async def api(barid: object, tmp_path: Path) -> AsyncIterator[Served]:
    async with served_world(tmp_path / "data") as served:
        yield served


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return dict(response.json())


async def _versions(client: httpx.AsyncClient) -> list[int]:
    return [v["id"] for v in (await client.get("/policy/versions")).json()["items"]]


async def test_apply_validates_is_idempotent_and_audited(api: Served) -> None:
    async with api.client("system-admin") as admin:
        problem(await admin.get("/policy"), 404)  # no version yet
        check = (await admin.post("/policy/validate", content=BROKEN, headers=TEXT)).json()
        assert not check["ok"] and {4, 6, 7} <= {p["line"] for p in check["problems"]}
        valid = (await admin.post("/policy/validate", json={"text": POLICY})).json()
        assert valid["ok"] and valid["errors"] == 0, valid
        refused = problem(await admin.put("/policy", content=BROKEN, headers=TEXT), 422)
        assert {4, 6, 7} <= {e["line"] for e in refused["errors"]}
        assert all(e["message"] and e["file"] == "api" for e in refused["errors"])
        assert await _versions(admin) == []
        first = await admin.put("/policy", params={"name": "first"}, content=POLICY, headers=TEXT)
        assert first.status_code == 201, first.text
        version = first.json()["version"]
        assert first.json()["created"] and version["name"] == "first"
        assert version["text"] == POLICY and version["applied_by"].startswith("token:")
        again = await admin.put("/policy", content=POLICY, headers=TEXT)
        assert again.status_code == 200 and not again.json()["created"]
        assert again.json()["version"]["id"] == version["id"]
        second = await admin.put("/policy", json={"text": CHANGED})
        assert second.status_code == 201
        new_id = second.json()["version"]["id"]
        assert await _versions(admin) == [new_id, version["id"]]
        running = (await admin.get("/policy")).json()
        assert running["id"] == new_id and running["text"] == CHANGED
        assert set(running) >= {"id", "sha256", "applied_by", "applied_at", "name", "text"}
        one = (await admin.get(f"/policy/versions/{version['id']}")).json()
        assert one["text"] == POLICY and one["name"] == "first"
        diff = (await admin.get(f"/policy/versions/{new_id}/diff",
                                params={"against": version["id"]})).json()  # fmt: skip
        assert "-  - id: finance-to-health" in diff["diff"]
        assert "+  - id: tax-to-health" in diff["diff"]
        problem(await admin.get("/policy/versions/999"), 404)
        problem(await admin.put("/policy", content=b"\xff\xfe", headers=TEXT), 422)
        events = (await admin.get("/audit/events", params={"kind": "policy.apply"})).json()
    assert len(events["items"]) == 2  # the identical retry wrote nothing
    details = events["items"][0]["details"]
    assert details["role"] == "system-admin" and details["client"] == "127.0.0.1"


async def test_roles_reading_and_writing_the_policy(api: Served) -> None:
    async with api.client("system-admin") as admin:
        assert (await admin.put("/policy", content=POLICY, headers=TEXT)).status_code == 201
    async with api.client("security-auditor") as auditor:
        assert (await auditor.get("/policy")).json()["text"] == POLICY
        assert (await auditor.get("/policy/versions")).status_code == 200
        problem(await auditor.put("/policy", content=CHANGED, headers=TEXT), 403)
    for role in ("agency-admin", "registrar"):
        async with api.client(role) as scoped:
            problem(await scoped.get("/policy"), 403)
            problem(await scoped.put("/policy", content=CHANGED, headers=TEXT), 403)
            problem(await scoped.post("/policy/validate", content=POLICY, headers=TEXT), 403)
    async with api.client("system-admin") as admin:
        assert await _versions(admin) == [1]


async def test_explain_and_case_tables_use_the_running_policy(api: Served) -> None:
    async with api.client("system-admin") as admin:
        await admin.put("/policy", content=POLICY, headers=TEXT)
        explained = await admin.post(
            "/policy/explain", json={"sender": TAX_CLERK, "recipient": MOH_DOCTOR}
        )
        assert explained.status_code == 200, explained.text
        body = explained.json()
        assert body["from"] == TAX_CLERK and body["decision"]["rule"] == "finance-to-health"
        draft = await admin.post("/policy/explain", json={
            "sender": TAX_CLERK, "recipient": MOH_DOCTOR, "policy_text": CHANGED})  # fmt: skip
        assert draft.json()["decision"]["rule"] == "tax-to-health"
        report = (await admin.post("/policy/cases", content=CASES, headers=TEXT)).json()
        assert report["total"] == 2 and report["failed"] == 1 and not report["ok"]
        assert report["failures"][0]["name"] == "wrong expectation"
        problem(await admin.post("/policy/explain", json={"sender": "x" * 400}), 422)
        problem(
            await admin.post("/policy/cases", content="x", headers={"content-type": "a/b"}), 415
        )
    async with api.client("security-auditor") as auditor:
        assert (await auditor.post("/policy/cases", content=CASES, headers=TEXT)).status_code == 200


async def test_policy_hits_are_paged_and_scoped(api: Served) -> None:
    app, tax, moh = api.world.app, api.world.tax_message, api.world.moh_message
    hits = [
        audit.Event(
            actor="smtp:submission",
            action=audit.POLICY_AUDIT_HIT,
            target=registry,
            details={"rule": rule, "sender": "s@x", "recipient": "r@y", "registry": registry},
        )
        for rule, registry in (("wide", tax), ("wide", moh), ("other", tax))
    ]
    async with transaction(app.sessions) as session:
        await audit.append_many(session, app.audit_key, hits)
    async with api.client("security-auditor") as auditor:
        first = (await auditor.get("/policy/hits", params={"limit": 2})).json()
        assert [h["rule"] for h in first["items"]] == ["other", "wide"] and first["next"]
        rest = await auditor.get("/policy/hits", params={"limit": 2, "cursor": first["next"]})
        assert [h["registry"] for h in rest.json()["items"]] == [tax]
        assert rest.json()["next"] is None
        wide = (await auditor.get("/policy/hits", params={"rule": "wide"})).json()["items"]
        assert len(wide) == 2
        problem(await auditor.get("/policy/hits", params={"cursor": "bogus"}), 400)
        problem(await auditor.get("/policy/hits", params={"since": "yesterday"}), 422)
    async with api.client("agency-admin") as mof:
        scoped = (await mof.get("/policy/hits")).json()["items"]
        assert {h["registry"] for h in scoped} == {tax}
    async with api.client("registrar") as reg:
        problem(await reg.get("/policy/hits"), 403)
