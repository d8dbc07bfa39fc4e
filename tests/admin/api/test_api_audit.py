"""Routes of the audit trail over real HTTP: events, chain verification and the
access trail (pages and the CSV export), as each role."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.store import audit
from gateway.store.db import transaction
from testkit.admin_api_server import Served, served_world
from testkit.admin_use_cases import MOH_DOCTOR, MOH_NURSE, TAX_CLERK, access_event


@pytest.fixture
async def api(barid: object, tmp_path: Path) -> AsyncIterator[Served]:
    async with served_world(tmp_path / "data") as served:
        yield served


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return dict(response.json())


async def test_events_paged_by_id_filtered_and_scoped(api: Served) -> None:
    async with api.client("system-admin") as admin:
        everything = (await admin.get("/audit/events", params={"limit": 500})).json()["items"]
        ids = [e["id"] for e in everything]
        assert ids == sorted(ids, reverse=True) and len(ids) > 3
        seen, cursor = [], None
        for _ in range(len(ids)):
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await admin.get("/audit/events", params=params)).json()
            seen += [e["id"] for e in page["items"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == ids
        reads = (await admin.get("/audit/events", params={"kind": "message.access"})).json()
        assert len(reads["items"]) == 3
        assert {e["node"] for e in reads["items"]} == {audit.node()}  # the node that wrote it
        by = (await admin.get("/audit/events", params={"actor": MOH_NURSE})).json()["items"]
        assert [e["target"] for e in by] == [api.world.moh_message]
        none = (await admin.get("/audit/events", params={"until": "2000-01-01"})).json()
        assert none["items"] == []
        later = (await admin.get("/audit/events", params={"since": "1h"})).json()["items"]
        assert len(later) == min(len(ids), 50)
        problem(await admin.get("/audit/events", params={"since": "whenever"}), 422)
        problem(await admin.get("/audit/events", params={"cursor": cursor or "x" * 20}), 400)
    async with api.client("agency-admin") as mof:
        scoped = (await mof.get("/audit/events", params={"limit": 500})).json()["items"]
        targets = {e["target"] for e in scoped}
        assert api.world.tax_message in targets and api.world.moh_message not in targets
    async with api.client("registrar") as reg:
        problem(await reg.get("/audit/events"), 403)


async def test_chain_verification_by_role(api: Served) -> None:
    async with api.client("security-auditor") as auditor:
        report = (await auditor.get("/audit/verify")).json()
        assert report["ok"] and report["events"] > 3 and report["problems"] == []
    async with api.client("agency-admin") as mof:
        problem(await mof.get("/audit/verify"), 404)  # global: outside any subtree
    async with api.client("registrar") as reg:
        problem(await reg.get("/audit/verify"), 403)


async def test_access_trail_pages_filters_and_scope(api: Served) -> None:
    tax, moh = api.world.tax_message, api.world.moh_message
    async with api.client("security-auditor") as auditor:
        first = (await auditor.get("/access-trail", params={"limit": 2})).json()
        assert [e["employee"] for e in first["items"]] == [MOH_NURSE, TAX_CLERK]
        rest = await auditor.get("/access-trail", params={"limit": 2, "cursor": first["next"]})
        assert [e["employee"] for e in rest.json()["items"]] == [MOH_DOCTOR]
        assert rest.json()["next"] is None
        assert rest.json()["items"][0]["copy"] == "recipient"
        assert rest.json()["items"][0]["node"] == audit.node()
        one = (await auditor.get("/access-trail", params={"registry": tax})).json()["items"]
        assert [e["employee"] for e in one] == [MOH_DOCTOR]
        mine = (await auditor.get("/access-trail", params={"employee": MOH_NURSE})).json()
        assert [e["registry"] for e in mine["items"]] == [moh]
        old = (await auditor.get("/access-trail", params={"until": "2000-01-01"})).json()
        assert old["items"] == []
        problem(await auditor.get("/access-trail", params={"cursor": first["next"] + "x"}), 400)
        problem(await auditor.get("/access-trail", params={"since": "soon"}), 422)
    async with api.client("agency-admin") as mof:
        scoped = (await mof.get("/access-trail", params={"limit": 1})).json()
        assert [e["employee"] for e in scoped["items"]] == [TAX_CLERK]  # an insider reading
        more = await mof.get("/access-trail", params={"limit": 1, "cursor": scoped["next"]})
        assert [e["registry"] for e in more.json()["items"]] == [tax]  # its message read
        assert more.json()["next"] is None  # the nurse's read is not shown
    async with api.client("registrar") as reg:
        problem(await reg.get("/access-trail"), 403)
        problem(await reg.get("/access-trail.csv"), 403)


async def test_access_trail_csv_quotes_and_guards_formulas(api: Served) -> None:
    app, tax = api.world.app, api.world.tax_message
    nasty = access_event(MOH_DOCTOR, tax)
    nasty.details["mailbox"] = '=HYPERLINK("http://x","a, b")'
    nasty.details["client"] = "@SUM(1)"
    async with transaction(app.sessions) as session:
        await audit.append_many(session, app.audit_key, [nasty])
    async with api.client("security-auditor") as auditor:
        response = await auditor.get("/access-trail.csv")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        text = response.text
        assert text.endswith("\r\n")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][:3] == ["at", "employee", "registry"]
        assert len(rows) == 1 + 4
        newest = dict(zip(rows[0], rows[1], strict=True))
        assert newest["mailbox"] == '\'=HYPERLINK("http://x","a, b")'
        assert newest["client"] == "'@SUM(1)" and newest["items"] == "BODY[]"
        assert newest["node"] == audit.node()
        assert '"\'=HYPERLINK(""http://x"",""a, b"")"' in text  # RFC 4180 quoting
        filtered = await auditor.get("/access-trail.csv", params={"employee": MOH_NURSE})
        assert len(list(csv.reader(io.StringIO(filtered.text)))) == 2
        problem(await auditor.get("/access-trail.csv", params={"since": "never"}), 422)
    async with api.client("agency-admin") as mof:
        rows = list(csv.reader(io.StringIO((await mof.get("/access-trail.csv")).text)))
        assert MOH_NURSE not in {row[1] for row in rows[1:]} and len(rows) == 1 + 3
