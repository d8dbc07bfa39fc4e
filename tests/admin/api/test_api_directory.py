"""The directory part of the admin API over real HTTP: agencies, employees, the
directory import as a background job, each as a system administrator, an agency
administrator of MOF (MOF > MOF-TAX; MOH lies outside) and a security auditor,
with real API tokens; every change is audited naming the account, role and client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from admin.context import App, open_app
from admin.services.audit import AuditQuery, query_events
from gateway.config import load_settings
from testkit.admin_api import api_app, role_tokens, serving
from testkit.admin_use_cases import (
    ADMIN,
    MOH_DOCTOR,
    PASSWORD,
    TAX_CLERK,
    ca_pem,
    person_cert,
    seed,
)

CSV_HEADER = "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"
CSV = {"content-type": "text/csv"}


@dataclass
class Api:
    app: App
    client: httpx.AsyncClient
    admin: dict[str, str]
    mof: dict[str, str]
    auditor: dict[str, str]


@pytest.fixture
async def api(barid: object, tmp_path: Path) -> AsyncIterator[Api]:
    settings = load_settings(str(tmp_path / "data" / "barid.toml"), environ={})
    async with open_app(settings) as app:
        await seed(app)
        tokens = await role_tokens(app)
        async with (
            serving(api_app(app)) as base,
            httpx.AsyncClient(base_url=base, timeout=20) as client,
        ):
            yield Api(
                app, client, tokens["system-admin"], tokens["agency-admin"], tokens["auditor"]
            )


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = dict(response.json())
    assert body["status"] == status
    return body


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def _events(app: App, action: str) -> list[dict[str, Any]]:
    rows = await query_events(ADMIN, app, AuditQuery(action=action, limit=1000))
    return [row.model_dump() for row in rows]


def _by_api(event: dict[str, Any], token_name: str, role: str) -> None:
    """The event names the acting token's account, its role and the client address."""
    assert event["actor"].startswith("token:") and event["actor"].endswith(f":test {token_name}")
    assert event["details"]["acting"] == {"role": role, "client": "127.0.0.1", "channel": "api"}


NEW_AGENCY = {
    "code": "MOF-CUS",
    "name_en": "Customs",
    "kind": "directorate",
    "domain": "cus.mof.gov.example",
    "parent": "MOF",
}


async def test_agency_list_pages_tree_and_detail(api: Api) -> None:
    c, h = api.client, api.admin
    first = _ok(await c.get("/api/v1/agencies", params={"limit": 2}, headers=h))
    assert [a["code"] for a in first["items"]] == ["MOF", "MOF-TAX"] and first["next"]
    rest = _ok(await c.get("/api/v1/agencies", params={"cursor": first["next"]}, headers=h))
    assert [a["code"] for a in rest["items"]] == ["MOH"] and rest["next"] is None
    bad = first["next"][:-2] + ("AA" if not first["next"].endswith("AA") else "BB")
    _problem(await c.get("/api/v1/agencies", params={"cursor": bad}, headers=h), 400)
    _problem(await c.get("/api/v1/agencies", params={"limit": 501}, headers=h), 422)
    tree = _ok(await c.get("/api/v1/agencies/tree", headers=h))
    assert [(n["code"], [k["code"] for k in n["children"]]) for n in tree] == [
        ("MOF", ["MOF-TAX"]),
        ("MOH", []),
    ]
    detail = _ok(await c.get("/api/v1/agencies/MOF-TAX", headers=h))
    assert detail["ancestors"] == ["MOF"] and detail["employees"] == 2
    _problem(await c.get("/api/v1/agencies/NOPE", headers=h), 404)
    _problem(await c.get("/api/v1/agencies/no%20such", headers=h), 422)


async def test_agency_changes_are_audited_and_an_add_is_safe_to_retry(api: Api) -> None:
    c, h = api.client, api.admin
    added = await c.post("/api/v1/agencies", json=NEW_AGENCY, headers=h)
    assert _ok(added, 201)["code"] == "MOF-CUS"
    again = _ok(await c.post("/api/v1/agencies", json=NEW_AGENCY, headers=h), 200)
    assert again == added.json()
    other = {**NEW_AGENCY, "name_en": "Another customs"}
    assert (
        "already exists"
        in _problem(await c.post("/api/v1/agencies", json=other, headers=h), 409)["detail"]
    )
    assert len(await _events(api.app, "agency.add")) == 4  # three seeded, one by the API
    changed = _ok(
        await c.patch("/api/v1/agencies/MOF-CUS", json={"name_en": "Customs Dept"}, headers=h)
    )
    assert changed["name_en"] == "Customs Dept"
    moved = _ok(
        await c.post("/api/v1/agencies/MOF-CUS/move", json={"parent": "MOF-TAX"}, headers=h)
    )
    assert moved["parent"] == "MOF-TAX"
    trusted = await c.post(
        "/api/v1/agencies/MOF-CUS/trusted-cas",
        json={"pem": ca_pem("Customs CA").decode()},
        headers=h,
    )
    assert _ok(trusted, 201)["agency"] == "MOF-CUS"
    bad_ca = await c.post("/api/v1/agencies/MOF-CUS/trusted-cas", json={"pem": "nope"}, headers=h)
    assert _problem(bad_ca, 422)["errors"]
    assert _ok(await c.post("/api/v1/agencies/MOF-CUS/retire", headers=h))["status"] == "suspended"
    assert _ok(await c.post("/api/v1/agencies/MOF-CUS/retire", headers=h))["status"] == "suspended"
    # A retired agency is no longer "the same" as an add of it.
    _problem(
        await c.post("/api/v1/agencies", json={**NEW_AGENCY, "parent": "MOF-TAX"}, headers=h), 409
    )
    for action in (
        "agency.add",
        "agency.change",
        "agency.move",
        "agency.trust-ca",
        "agency.retire",
    ):
        event = (await _events(api.app, action))[-1]
        assert event["target"] == "MOF-CUS"
        _by_api(event, "system-admin", "system-admin")


async def test_a_move_that_makes_a_cycle_is_422_and_changes_nothing(api: Api) -> None:
    c, h = api.client, api.admin
    refused = _problem(
        await c.post("/api/v1/agencies/MOF/move", json={"parent": "MOF-TAX"}, headers=h), 422
    )
    assert "cycle" in refused["detail"]
    assert _ok(await c.get("/api/v1/agencies/MOF", headers=h))["parent"] is None
    assert _ok(await c.get("/api/v1/agencies/MOF-TAX", headers=h))["parent"] == "MOF"
    assert await _events(api.app, "agency.move") == []


NEW_PERSON = {
    "address": "new@tax.mof.gov.example",
    "agency": "MOF-TAX",
    "name_en": "New",
    "password": PASSWORD.get_secret_value(),
}


async def test_employee_endpoints(api: Api) -> None:
    c, h = api.client, api.admin
    page = _ok(await c.get("/api/v1/employees", params={"limit": 3}, headers=h))
    rest = _ok(await c.get("/api/v1/employees", params={"cursor": page["next"]}, headers=h))
    assert len(page["items"]) == 3 and len(rest["items"]) == 1 and rest["next"] is None
    tax = _ok(await c.get("/api/v1/employees", params={"agency": "MOF-TAX"}, headers=h))
    assert {e["agency"] for e in tax["items"]} == {"MOF-TAX"} and len(tax["items"]) == 2
    added = _ok(await c.post("/api/v1/employees", json=NEW_PERSON, headers=h), 201)
    assert added["has_password"] and "password" not in added
    assert _ok(await c.post("/api/v1/employees", json=NEW_PERSON, headers=h), 200) == added
    other_password = {**NEW_PERSON, "password": "another long passphrase 77"}
    _problem(await c.post("/api/v1/employees", json=other_password, headers=h), 409)
    url = f"/api/v1/employees/{TAX_CLERK}"
    assert _ok(await c.get(url, headers=h))["identities"] == []
    assert _ok(await c.patch(url, json={"clearance": "secret"}, headers=h))["clearance"] == "secret"
    for _ in range(2):  # PUT: the same status twice is fine
        status = await c.put(f"{url}/status", json={"status": "suspended"}, headers=h)
        assert _ok(status)["status"] == "suspended"
    _problem(await c.put(f"{url}/status", json={"status": "gone"}, headers=h), 422)
    reset = await c.post(
        f"{url}/password-reset", json={"password": "a brand new passphrase 99"}, headers=h
    )
    assert _ok(reset) == {"ok": True, "address": TAX_CLERK}
    weak = await c.post(f"{url}/password-reset", json={"password": "Zq9x"}, headers=h)
    assert _problem(weak, 422)["detail"] and "Zq9x" not in weak.text  # never echoed
    pem, fingerprint = person_cert(TAX_CLERK)
    registered = await c.post(f"{url}/identities", json={"material": pem.decode()}, headers=h)
    assert _ok(registered, 201)["fingerprint"] == fingerprint
    revoked = await c.post(f"{url}/identities/revoke", json={"fingerprint": fingerprint}, headers=h)
    assert _ok(revoked)["fingerprint"] == fingerprint
    _problem(
        await c.post(f"{url}/identities/revoke", json={"fingerprint": fingerprint}, headers=h), 404
    )
    for action in (
        "employee.add",
        "employee.change",
        "employee.suspend",
        "employee.set-password",
        "employee.import-key",
        "employee.revoke-key",
    ):
        events = await _events(api.app, action)
        assert len(events) == (5 if action == "employee.add" else 1), action
        _by_api(events[-1], "system-admin", "system-admin")
    assert "a brand new passphrase" not in str(await _events(api.app, "employee.set-password"))


async def test_an_agency_admin_acts_inside_its_subtree_only(api: Api) -> None:
    c, h = api.client, api.mof
    listed = _ok(await c.get("/api/v1/agencies", headers=h))["items"]
    assert [a["code"] for a in listed] == ["MOF", "MOF-TAX"]
    assert [n["code"] for n in _ok(await c.get("/api/v1/agencies/tree", headers=h))] == ["MOF"]
    people = _ok(await c.get("/api/v1/employees", headers=h))["items"]
    assert {p["agency"] for p in people} == {"MOF-TAX"}
    # Outside answers exactly like unknown.
    outside = _problem(await c.get("/api/v1/agencies/MOH", headers=h), 404)
    unknown = _problem(await c.get("/api/v1/agencies/NOPE", headers=h), 404)
    assert {k: v for k, v in outside.items() if k != "instance"} == {
        k: v for k, v in unknown.items() if k != "instance"
    }
    doctor = f"/api/v1/employees/{MOH_DOCTOR}"
    writes = [
        c.patch("/api/v1/agencies/MOH", json={"name_en": "Mine now"}, headers=h),
        c.post("/api/v1/agencies/MOH/move", json={"parent": "MOF"}, headers=h),
        c.post("/api/v1/agencies/MOF-TAX/move", json={"parent": "MOH"}, headers=h),
        c.post("/api/v1/agencies/MOH/retire", headers=h),
        c.post(
            "/api/v1/agencies",
            json={**NEW_AGENCY, "parent": "MOH", "domain": "x.moh.gov.example"},
            headers=h,
        ),
        c.post("/api/v1/agencies/MOH/trusted-cas", json={"pem": ca_pem("x").decode()}, headers=h),
        c.get("/api/v1/employees", params={"agency": "MOH"}, headers=h),
        c.get(doctor, headers=h),
        c.patch(doctor, json={"name_en": "X"}, headers=h),
        c.put(f"{doctor}/status", json={"status": "suspended"}, headers=h),
        c.post(
            f"{doctor}/password-reset", json={"password": "a brand new passphrase 99"}, headers=h
        ),
        c.post(
            "/api/v1/employees",
            json={"address": "x@moh.gov.example", "agency": "MOH", "name_en": "X"},
            headers=h,
        ),
    ]
    for response in await asyncio.gather(*writes):
        _problem(response, 404)
    moh = _ok(await c.get("/api/v1/agencies/MOH", headers=api.admin))
    assert moh["name_en"] == "Health" and moh["parent"] is None and moh["status"] == "active"
    assert moh["trusted_cas"] == [] and moh["employees"] == 2
    assert _ok(await c.get(doctor, headers=api.admin))["status"] == "active"
    # Inside, the same changes work and are audited as the agency administrator.
    assert _ok(await c.post("/api/v1/agencies", json=NEW_AGENCY, headers=h), 201)
    renamed = await c.patch("/api/v1/agencies/MOF-TAX", json={"name_en": "Taxes"}, headers=h)
    assert _ok(renamed)["name_en"] == "Taxes"
    _problem(await c.post("/api/v1/agencies/MOF/retire", headers=h), 403)  # its own root
    _by_api((await _events(api.app, "agency.change"))[-1], "agency-admin", "agency-admin")


async def test_a_security_auditor_reads_but_every_write_is_403(api: Api) -> None:
    c, h = api.client, api.auditor
    assert len(_ok(await c.get("/api/v1/agencies", headers=h))["items"]) == 3
    assert len(_ok(await c.get("/api/v1/employees", headers=h))["items"]) == 4
    _ok(await c.get(f"/api/v1/employees/{TAX_CLERK}", headers=h))
    url = f"/api/v1/employees/{TAX_CLERK}"
    writes = [
        c.post("/api/v1/agencies", json=NEW_AGENCY, headers=h),
        c.patch("/api/v1/agencies/MOF", json={"name_en": "X"}, headers=h),
        c.post("/api/v1/agencies/MOF-TAX/move", json={"parent": None}, headers=h),
        c.post("/api/v1/agencies/MOF-TAX/retire", headers=h),
        c.post("/api/v1/agencies/MOF/trusted-cas", json={"pem": ca_pem("x").decode()}, headers=h),
        c.post("/api/v1/employees", json=NEW_PERSON, headers=h),
        c.patch(url, json={"name_en": "X"}, headers=h),
        c.put(f"{url}/status", json={"status": "left"}, headers=h),
        c.post(f"{url}/password-reset", json={"password": "a brand new passphrase 99"}, headers=h),
        c.post(
            f"{url}/identities", json={"material": person_cert(TAX_CLERK)[0].decode()}, headers=h
        ),
        c.post(f"{url}/identities/revoke", json={"fingerprint": "AB"}, headers=h),
        c.post("/api/v1/directory/imports", content=CSV_HEADER, headers={**h, **CSV}),
    ]
    for response in await asyncio.gather(*writes):
        _problem(response, 403)
    after = _ok(await c.get("/api/v1/agencies", headers=h))["items"]
    assert [(a["code"], a["name_en"], a["status"]) for a in after] == [
        ("MOF", "Finance", "active"),
        ("MOF-TAX", "Tax", "active"),
        ("MOH", "Health", "active"),
    ]
    assert _ok(await c.get(url, headers=h))["status"] == "active"


async def test_a_csv_with_two_bad_rows_is_422_listing_both_and_imports_nothing(api: Api) -> None:
    csv = CSV_HEADER + (
        "agency,MOF-NEW,New,,directorate,new.mof.gov.example,MOF,,,,\n"
        "employee,,Bad,,,,,bad@nowhere.example,NOPE,,\n"
        "employee,,Ok,,,,,ok@new.mof.gov.example,MOF-NEW,,\n"
        "agency,MOF-TAX,Dup,,directorate,dup.mof.gov.example,MOF,,,,\n"
    )
    refused = await api.client.post(
        "/api/v1/directory/imports", content=csv, headers={**api.admin, **CSV}
    )
    body = _problem(refused, 422)
    lines = [e["message"] for e in body["errors"]]
    assert len(lines) == 2 and "line 3" in lines[0] and "line 5" in lines[1], lines
    listed = _ok(await api.client.get("/api/v1/agencies", headers=api.admin))["items"]
    assert [a["code"] for a in listed] == ["MOF", "MOF-TAX", "MOH"]
    assert await _events(api.app, "directory.import") == []
    wrong_type = await api.client.post(
        "/api/v1/directory/imports",
        content=csv,
        headers={**api.admin, "content-type": "text/plain"},
    )
    _problem(wrong_type, 415)


async def _wait_done(api: Api, url: str) -> dict[str, Any]:
    for _ in range(500):
        job = _ok(await api.client.get(url, headers=api.admin))
        if job["state"] in ("done", "failed"):
            return dict(job)
        await asyncio.sleep(0.02)
    raise AssertionError("the import job did not finish")


async def test_a_good_import_runs_as_a_job_to_done_with_progress(api: Api) -> None:
    people = "".join(f"employee,,P{i},,,,,p{i}@new.mof.gov.example,MOF-NEW,,\n" for i in range(30))
    csv = CSV_HEADER + "agency,MOF-NEW,New,,directorate,new.mof.gov.example,MOF,,,,\n" + people
    started = await api.client.post(
        "/api/v1/directory/imports", content=csv.encode(), headers={**api.admin, **CSV}
    )
    accepted = _ok(started, 202)
    assert accepted["status_url"] == f"/api/v1/jobs/{accepted['job']}"
    assert started.headers["location"] == accepted["status_url"]
    job = await _wait_done(api, accepted["status_url"])
    assert job["state"] == "done" and job["kind"] == "directory-import", job
    assert job["progress"] == {"done": 31, "total": 31} and job["error"] is None
    assert job["result"]["agencies"] == 1 and job["result"]["employees"] == 30
    assert len(job["result"]["issued"]) == 30
    detail = _ok(await api.client.get("/api/v1/agencies/MOF-NEW", headers=api.admin))
    assert detail["employees"] == 30
    _by_api((await _events(api.app, "directory.import"))[-1], "system-admin", "system-admin")
    # Only the account that started it sees it; an unknown job reads the same.
    _problem(await api.client.get(accepted["status_url"], headers=api.mof), 404)
    _problem(await api.client.get(accepted["status_url"], headers=api.auditor), 404)
    _problem(await api.client.get("/api/v1/jobs/unknown", headers=api.admin), 404)


async def test_an_agency_admins_import_stays_in_its_subtree(api: Api) -> None:
    outside = CSV_HEADER + "agency,MOH-NEW,New,,directorate,new.moh.gov.example,MOH,,,,\n"
    refused = await api.client.post(
        "/api/v1/directory/imports", content=outside, headers={**api.mof, **CSV}
    )
    assert "unknown parent" in _problem(refused, 422)["errors"][0]["message"]
    inside = CSV_HEADER + "agency,MOF-NEW,New,,directorate,new.mof.gov.example,MOF,,,,\n"
    started = await api.client.post(
        "/api/v1/directory/imports", content=inside, headers={**api.mof, **CSV}
    )
    url = _ok(started, 202)["status_url"]
    for _ in range(500):
        job = _ok(await api.client.get(url, headers=api.mof))
        if job["state"] in ("done", "failed"):
            break
        await asyncio.sleep(0.02)
    assert job["state"] == "done" and job["result"]["agencies"] == 1, job
    assert _ok(await api.client.get(url, headers=api.admin))["id"] == job["id"]


async def test_the_openapi_document_lists_the_directory_routes(api: Api) -> None:
    doc = _ok(await api.client.get("/api/v1/openapi.json"))
    paths = doc["paths"]
    for path in (
        "/api/v1/agencies",
        "/api/v1/agencies/tree",
        "/api/v1/agencies/{code}/move",
        "/api/v1/employees/{address}/status",
        "/api/v1/directory/imports",
        "/api/v1/jobs/{job_id}",
    ):
        assert path in paths, path
    assert "text/csv" in paths["/api/v1/directory/imports"]["post"]["requestBody"]["content"]
    assert set(paths["/api/v1/agencies"]["post"]["responses"]) >= {"200", "201", "422"}
