"""Writes a client can safely retry, over real HTTP with real API tokens: retiring a
retired agency, trusting a trusted CA and registering a registered identity answer
200 with what exists and write nothing; a conflicting request still answers 409.
An `Idempotency-Key` makes a directory import answer the job it started, and a
token creation answer 409 naming the token made for the key (never a second one);
the same key with another request is 422.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from admin.api.jobs import Job, Jobs, KeyReused, Retry
from admin.context import App, open_app
from admin.services.audit import AuditQuery, query_events
from admin.services.bulk_import import ImportResult
from gateway.config import load_settings
from gateway.store.models import Employee, SigningIdentity
from testkit.admin_api import api_app, role_tokens, serving
from testkit.admin_use_cases import ADMIN, TAX_CLERK, TAX_OTHER, ca_pem, person_cert, seed


@dataclass
class Api:
    app: App
    client: httpx.AsyncClient
    admin: dict[str, str]
    mof: dict[str, str]


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
            yield Api(app, client, tokens["system-admin"], tokens["agency-admin"])


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return dict(response.json())


async def _count(app: App, action: str) -> int:
    return len(await query_events(ADMIN, app, AuditQuery(action=action, limit=1000)))


async def test_retiring_a_retired_agency_answers_it_and_writes_nothing(api: Api) -> None:
    c = api.client
    first = _ok(await c.post("/api/v1/agencies/MOF-TAX/retire", headers=api.mof))
    assert first["status"] == "suspended" and await _count(api.app, "agency.retire") == 1
    for headers in (api.mof, api.admin):  # the same retry, by the same or another admin
        again = _ok(await c.post("/api/v1/agencies/MOF-TAX/retire", headers=headers))
        assert again == first
    assert await _count(api.app, "agency.retire") == 1
    # The refusals stay: its own agency (403), outside the subtree (404).
    _problem(await c.post("/api/v1/agencies/MOF/retire", headers=api.mof), 403)
    _problem(await c.post("/api/v1/agencies/MOH/retire", headers=api.mof), 404)
    assert await _count(api.app, "agency.retire") == 1


async def test_trusting_a_trusted_ca_answers_it_and_writes_nothing(api: Api) -> None:
    c, pem = api.client, {"pem": ca_pem("Tax CA").decode()}
    url = "/api/v1/agencies/MOF-TAX/trusted-cas"
    first = _ok(await c.post(url, json=pem, headers=api.mof), 201)
    again = _ok(await c.post(url, json=pem, headers=api.mof), 200)
    assert again == first and await _count(api.app, "agency.trust-ca") == 1
    trusted = _ok(await c.get("/api/v1/agencies/MOF-TAX", headers=api.mof))["trusted_cas"]
    assert [ca["fingerprint"] for ca in trusted] == [first["fingerprint"]]
    # Another CA, or the same CA for another agency, is a new change.
    _ok(await c.post(url, json={"pem": ca_pem("Other CA").decode()}, headers=api.mof), 201)
    _ok(await c.post("/api/v1/agencies/MOF/trusted-cas", json=pem, headers=api.mof), 201)
    assert await _count(api.app, "agency.trust-ca") == 3


async def test_registering_a_registered_identity_answers_it_and_writes_nothing(api: Api) -> None:
    c, url = api.client, f"/api/v1/employees/{TAX_CLERK}/identities"
    pem, fingerprint = person_cert(TAX_CLERK)
    first = _ok(await c.post(url, json={"material": pem.decode()}, headers=api.mof), 201)
    assert first["fingerprint"] == fingerprint
    again = _ok(await c.post(url, json={"material": pem.decode()}, headers=api.admin), 200)
    assert again == first and await _count(api.app, "employee.import-key") == 1
    shown = _ok(await c.get(f"/api/v1/employees/{TAX_CLERK}", headers=api.mof))["identities"]
    assert [i["fingerprint"] for i in shown] == [fingerprint]


async def test_an_identity_registered_to_another_employee_is_still_409(api: Api) -> None:
    pem, fingerprint = person_cert(TAX_CLERK)
    # The same fingerprint on another employee's row (a state the API cannot make,
    # since an identity must name its owner): registering it here is a conflict.
    async with api.app.sessions() as session, session.begin():
        other = await session.scalar(select(Employee.id).where(Employee.address == TAX_OTHER))
        assert other is not None
        session.add(
            SigningIdentity(
                employee_id=other, kind="x509", fingerprint=fingerprint,
                material=pem.decode(), created_at="2026-01-01T00:00:00Z",
            )
        )  # fmt: skip
    url = f"/api/v1/employees/{TAX_CLERK}/identities"
    for _ in range(2):
        refused = _problem(await api.client.post(url, json={"material": pem.decode()},
                                                 headers=api.admin), 409)  # fmt: skip
        assert "another employee" in refused["detail"]
    assert await _count(api.app, "employee.import-key") == 0
    shown = _ok(await api.client.get(f"/api/v1/employees/{TAX_CLERK}", headers=api.admin))
    assert shown["identities"] == []


# ---- Idempotency-Key: the directory import ----------------------------------------

CSV_HEADER = "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"
NEW_DIR = CSV_HEADER + "agency,MOF-NEW,New,,directorate,new.mof.gov.example,MOF,,,,\n"
IMPORTS = "/api/v1/directory/imports"


def _csv(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    extra = {"Idempotency-Key": key} if key is not None else {}
    return {**headers, "content-type": "text/csv", **extra}


async def _finished(api: Api, url: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(500):
        job = _ok(await api.client.get(url, headers=headers))
        if job["state"] in ("done", "failed"):
            return dict(job)
        await asyncio.sleep(0.02)
    raise AssertionError("the job did not finish")


async def test_an_import_retried_with_its_key_answers_the_same_job(api: Api) -> None:
    c, h = api.client, api.admin
    first = await c.post(IMPORTS, content=NEW_DIR, headers=_csv(h, "import-7f3a"))
    started = _ok(first, 202)
    job = await _finished(api, started["status_url"], h)
    assert job["state"] == "done" and job["result"]["agencies"] == 1, job
    for key in ("import-7f3a", '"import-7f3a"'):  # the structured-field form is the same key
        again = await c.post(IMPORTS, content=NEW_DIR, headers=_csv(h, key))
        assert _ok(again, 202) == started and again.headers["location"] == started["status_url"]
    assert await _count(api.app, "directory.import") == 1
    listed = _ok(await c.get("/api/v1/agencies", headers=h))["items"]
    assert [a["code"] for a in listed].count("MOF-NEW") == 1
    # The same key with another body, or the same body as a dry run: 422, nothing started.
    other = NEW_DIR.replace("MOF-NEW,New", "MOF-OTHER,Other").replace("new.mof", "other.mof")
    for content, params in ((other, {}), (NEW_DIR, {"dry_run": "true"})):
        refused = await c.post(IMPORTS, content=content, params=params,
                               headers=_csv(h, "import-7f3a"))  # fmt: skip
        assert "another request" in _problem(refused, 422)["detail"]
    assert await _count(api.app, "directory.import") == 1
    assert "MOF-OTHER" not in str(_ok(await c.get("/api/v1/agencies", headers=h)))


async def test_import_keys_are_per_account_and_without_one_each_request_starts_a_job(
    api: Api,
) -> None:
    c = api.client
    dry = {"dry_run": "true"}
    mine = _ok(await c.post(IMPORTS, content=NEW_DIR, params=dry, headers=_csv(api.admin, "k1")),
               202)  # fmt: skip
    theirs = await c.post(IMPORTS, content=NEW_DIR, params=dry, headers=_csv(api.mof, "k1"))
    assert _ok(theirs, 202)["job"] != mine["job"]
    unkeyed = [
        _ok(await c.post(IMPORTS, content=NEW_DIR, params=dry, headers=_csv(api.admin)), 202)
        for _ in range(2)
    ]
    assert len({started["job"] for started in unkeyed} | {mine["job"]}) == 3
    bad_keys: list[str | bytes] = ["x" * 129, "caf\u00e9".encode("latin-1"), "a\tb", '""']
    for bad in bad_keys:
        headers = {**api.admin, "content-type": "text/csv", "Idempotency-Key": bad}
        refused = await c.post(IMPORTS, content=NEW_DIR, params=dry, headers=headers)
        assert "Idempotency-Key" in _problem(refused, 422)["detail"]


async def test_an_import_key_is_forgotten_with_its_job() -> None:
    jobs = Jobs(keep=1)

    async def done(job: Job) -> ImportResult:
        return ImportResult(dry_run=True, agencies=0, employees=0, issued=[])

    retry = Retry("k", "fingerprint")
    first = jobs.start(ADMIN, "directory-import", done, retry=retry)
    assert jobs.start(ADMIN, "directory-import", done, retry=retry) is first
    with pytest.raises(KeyReused):
        jobs.start(ADMIN, "directory-import", done, retry=Retry("k", "another"))
    assert first.task is not None
    await first.task
    other = jobs.start(ADMIN, "directory-import", done)  # drops the finished first job
    assert other.task is not None
    await other.task
    assert jobs.find(ADMIN, "directory-import", retry) is None
    assert jobs.start(ADMIN, "directory-import", done, retry=retry) is not first


# ---- Idempotency-Key: API tokens ----------------------------------------------------

TOKENS = "/api/v1/tokens"
AUDITOR_TOKEN = {"name": "siem export", "role": "security-auditor", "expires_days": 30}


async def test_a_token_retried_with_its_key_is_409_naming_it_never_a_second_token(
    api: Api,
) -> None:
    c, keyed = api.client, {**api.admin, "Idempotency-Key": "token-0001"}
    created = _ok(await c.post(TOKENS, json=AUDITOR_TOKEN, headers=keyed), 201)
    token_id, secret = created["token"]["id"], created["secret"]
    before = _ok(await c.get(TOKENS, headers=api.admin))
    again = _problem(await c.post(TOKENS, json=AUDITOR_TOKEN, headers=keyed), 409)
    assert f"API token {token_id} " in again["detail"] and "shown once" in again["detail"]
    assert secret not in str(again)
    # Another server over the same store (a restart) remembers the key too.
    async with serving(api_app(api.app)) as base, httpx.AsyncClient(base_url=base) as other:
        _problem(await other.post(TOKENS, json=AUDITOR_TOKEN, headers=keyed), 409)
    # The same key with another request: 422.
    changed = {**AUDITOR_TOKEN, "expires_days": 31}
    assert "another" in _problem(await c.post(TOKENS, json=changed, headers=keyed), 422)["detail"]
    assert _ok(await c.get(TOKENS, headers=api.admin)) == before
    assert await _count(api.app, "admin.token.create") == 4  # three for the test roles, one here
    # The secret shown once works; a revoked token still holds its key.
    assert (await c.get(TOKENS, headers={"Authorization": f"Bearer {secret}"})).status_code == 200
    _ok(await c.delete(f"{TOKENS}/{token_id}", headers=api.admin))
    _problem(await c.post(TOKENS, json=AUDITOR_TOKEN, headers=keyed), 409)


async def test_token_keys_are_per_creator_and_without_one_each_request_makes_a_token(
    api: Api,
) -> None:
    c, key = api.client, {"Idempotency-Key": "shared-key"}
    scoped = {"name": "tax robot", "role": "agency-admin", "agency": "MOF-TAX"}
    _ok(await c.post(TOKENS, json=scoped, headers={**api.admin, **key}), 201)
    _ok(await c.post(TOKENS, json=scoped, headers={**api.mof, **key}), 201)
    ids = {_ok(await c.post(TOKENS, json=scoped, headers=api.mof), 201)["token"]["id"]
           for _ in range(2)}  # fmt: skip
    assert len(ids) == 2
    assert await _count(api.app, "admin.token.create") == 3 + 4
    refused = await c.post(TOKENS, json=scoped, headers={**api.mof, "Idempotency-Key": "x" * 129})
    _problem(refused, 422)


async def test_the_openapi_document_declares_the_idempotency_key_header(api: Api) -> None:
    paths = _ok(await api.client.get("/api/v1/openapi.json"))["paths"]
    for path in (TOKENS, IMPORTS):
        headers = [p for p in paths[path]["post"]["parameters"] if p["in"] == "header"]
        assert [(p["name"], p["required"]) for p in headers] == [("Idempotency-Key", False)]
        assert "ASCII" in headers[0]["description"]
    for path in ("/api/v1/agencies/{code}/trusted-cas", "/api/v1/employees/{address}/identities"):
        assert set(paths[path]["post"]["responses"]) >= {"200", "201", "409"}
