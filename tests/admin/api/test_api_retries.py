"""Writes a client can safely retry, over real HTTP with real API tokens: retiring a
retired agency, trusting a trusted CA and registering a registered identity answer
200 with what exists and write nothing; a conflicting request still answers 409.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from admin.context import App, open_app
from admin.services.audit import AuditQuery, query_events
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
