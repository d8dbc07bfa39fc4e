"""Routes of messages, revocation and the delivery queue over real HTTP, as each role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.admin_api_server import Served, served_world


@pytest.fixture
async def api(barid: object, tmp_path: Path) -> AsyncIterator[Served]:
    async with served_world(tmp_path / "data") as served:
        yield served


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return dict(response.json())


async def test_tracking_shows_every_copy_never_the_body_and_keeps_scope(api: Served) -> None:
    tax, moh = api.world.tax_message, api.world.moh_message
    async with api.client("agency-admin") as mof, api.client("registrar") as reg:
        seen = await mof.get(f"/messages/{tax}")
        assert seen.status_code == 200, seen.text
        body = seen.json()
        assert body["registry"] == tax and body["agency"] == "MOF-TAX"
        (copy,) = body["copies"]
        assert {"target", "state", "attempts", "delivered_at", "receipts"} <= set(copy)
        assert "confidential body" not in seen.text and "a subject never shown" not in seen.text
        assert (await reg.get(f"/messages/{tax}")).status_code == 200
        outside = problem(await mof.get(f"/messages/{moh}"), 404)
        missing = problem(await mof.get("/messages/MOF/2099/000001"), 404)
        assert outside["detail"] == missing["detail"]  # outside and absent look alike
        problem(await reg.get(f"/messages/{moh}"), 404)
        problem(await mof.get("/messages/not a registry"), 422)
    async with api.client("security-auditor") as auditor:
        assert (await auditor.get(f"/messages/{moh}")).status_code == 200


async def test_revocation_is_audited_idempotent_and_scoped(api: Served) -> None:
    tax, moh = api.world.tax_message, api.world.moh_message
    async with api.client("security-auditor") as auditor:
        problem(await auditor.post(f"/messages/{tax}/revocation", json={"reason": "x"}), 403)
    async with api.client("registrar") as reg:
        problem(await reg.post(f"/messages/{moh}/revocation", json={"reason": "x"}), 404)
        problem(await reg.post(f"/messages/{tax}/revocation", json={"reason": ""}), 422)
        first = await reg.post(f"/messages/{tax}/revocation", json={"reason": "sent in error"})
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "revoked" and first.json()["reason"] == "sent in error"
        again = await reg.post(f"/messages/{tax}/revocation", json={"reason": "other"})
        assert again.status_code == 200 and again.json() == first.json()
    async with api.client("system-admin") as admin:
        events = (await admin.get("/audit/events", params={"kind": "message.revoke"})).json()
    assert len(events["items"]) == 1, events
    event = events["items"][0]
    assert event["target"] == tax and event["actor"].startswith("token:")
    acting = event["details"]["acting"]
    assert acting == {"role": "registrar", "client": "127.0.0.1", "channel": "api"}


async def test_queue_actions_scope_idempotency_and_audit(api: Served) -> None:
    tax, moh = api.world.tax_entry, api.world.moh_entry
    async with api.client("agency-admin") as mof:
        listed = (await mof.get("/queue")).json()
        assert [e["id"] for e in listed["items"]] == [tax] and listed["next"] is None
        assert (await mof.get(f"/queue/{tax}")).json()["state"] == "queued"
        problem(await mof.get(f"/queue/{moh}"), 404)
        problem(await mof.post(f"/queue/{moh}/hold"), 404)
        held = await mof.post(f"/queue/{tax}/hold")
        assert held.status_code == 200 and held.json()["state"] == "held"
        again = await mof.post(f"/queue/{tax}/hold")
        assert again.status_code == 200 and again.json() == held.json()
        released = await mof.post(f"/queue/{tax}/release")
        assert released.json()["state"] == "queued"
        assert (await mof.post(f"/queue/{tax}/release")).status_code == 200
        assert (await mof.post(f"/queue/{tax}/retry")).json()["state"] == "queued"
        assert [e["id"] for e in (await mof.get("/queue", params={"state": "held"})).json()[
            "items"]] == []  # fmt: skip
    async with api.client("security-auditor") as auditor:
        assert len((await auditor.get("/queue")).json()["items"]) == 2
        for action in ("retry", "hold", "release"):
            problem(await auditor.post(f"/queue/{moh}/{action}"), 403)
        problem(await auditor.post(f"/queue/{moh}/purge", json={"reason": "x"}), 403)
    async with api.client("system-admin") as admin:
        problem(await admin.post(f"/queue/{moh}/purge", json={"reason": "  "}), 422)
        purged = await admin.post(f"/queue/{moh}/purge", json={"reason": "withdrawn"})
        assert purged.status_code == 200 and purged.json()["state"] == "failed"
        problem(await admin.post(f"/queue/{moh}/purge", json={"reason": "withdrawn"}), 409)
        problem(await admin.get("/queue/999999"), 404)
        problem(await admin.get("/queue", params={"state": "nope"}), 422)
        events = (await admin.get("/audit/events", params={"limit": 500})).json()["items"]
    queue_events = [e for e in events if e["action"].startswith("queue.")]
    holds = [e for e in queue_events if e["action"] == "queue.hold"]
    assert len(holds) == 1  # the repeated hold wrote nothing
    acting = holds[0]["details"]["acting"]
    assert acting == {"role": "agency-admin", "client": "127.0.0.1", "channel": "api"}
    assert holds[0]["actor"].startswith("token:")


async def test_queue_pages_with_a_signed_cursor(api: Served) -> None:
    async with api.client("system-admin") as admin:
        first = (await admin.get("/queue", params={"limit": 1})).json()
        assert len(first["items"]) == 1 and first["next"]
        second = (await admin.get("/queue", params={"limit": 1, "cursor": first["next"]})).json()
        assert len(second["items"]) == 1 and second["next"] is None
        assert first["items"][0]["id"] < second["items"][0]["id"]
        tampered = first["next"][:-2] + ("AA" if not first["next"].endswith("AA") else "BB")
        problem(await admin.get("/queue", params={"limit": 1, "cursor": tampered}), 400)
        problem(await admin.get("/queue", params={"limit": 501}), 422)
