"""Every endpoint of the admin API, tried as each scoped or read-only role over real HTTP.

The table below names every operation of the OpenAPI document (a new endpoint
without a row fails the first test) with a request on an object inside the
agency administrator's subtree (MOF > MOF-TAX) and, where the object belongs to
an agency, one on an object outside it (MOH). Then:

- as `agency-admin` of MOF: every request outside answers 404 (403 where the
  role may never act) and changes nothing; every request inside is allowed;
  lists show nothing outside;
- as `security-auditor`: every write answers 403 and changes nothing, but for
  acknowledging an alert (the one change the role makes); every read is allowed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from testkit.admin_api_server import Served, served_world
from testkit.admin_use_cases import (
    MOH_DOCTOR,
    MOH_NURSE,
    TAX_CLERK,
    TAX_OTHER,
    World,
    ca_pem,
    person_cert,
)

CSV_HEADER = "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"
STRONG = "a long and unusual passphrase 9173"
DENIED = {403, 404}  # the role may never (403), or the object is out of sight (404)
ALLOWED = {200, 201, 202}
# Tables whose rows change by merely being called (last use of a token, sessions).
VOLATILE = {"admin_tokens", "admin_sessions", "alembic_version"}


@dataclass
class Call:
    method: str
    path: str
    json: Any = None
    content: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    async def send(self, client: httpx.AsyncClient) -> httpx.Response:
        headers = {"content-type": "text/csv"} if self.content is not None else {}
        return await client.request(self.method, self.path, json=self.json, content=self.content,
                                    params=self.params, headers=headers)  # fmt: skip


@dataclass
class Row:
    """One operation: a request inside the subtree, and one outside (None: no agency)."""

    method: str
    template: str
    write: bool
    inside: Call
    outside: Call | None = None
    inside_ok: set[int] = field(default_factory=lambda: set(ALLOWED))
    outside_status: set[int] = field(default_factory=lambda: set(DENIED))
    auditor_writes: bool = False  # the one kind of change a security auditor makes


@dataclass
class Ids:
    world: World
    own_token: int  # a token the agency administrator may see (scoped inside MOF)
    other_token: int  # the system administrator's
    own_job: str
    other_job: str


# fmt: off
def rows(ids: Ids) -> list[Row]:
    w = ids.world
    tax, moh = w.tax_message, w.moh_message
    ag, emp = "/agencies", "/employees"
    inside_csv = CSV_HEADER + "agency,MOF-IMP,Imported,,directorate,imp.mof.gov.example,MOF,,,,\n"
    outside_csv = CSV_HEADER + "agency,MOH-IMP,Imported,,directorate,imp.moh.gov.example,MOH,,,,\n"
    ca = ca_pem("Table CA").decode()
    cert = person_cert(TAX_CLERK)[0].decode()
    cert_moh = person_cert(MOH_DOCTOR)[0].decode()

    def r(method: str, template: str, write: bool, inside: Call, outside: Call | None = None,
          **kw: Any) -> Row:  # fmt: skip
        return Row(method, template, write, inside, outside, **kw)

    def c(method: str, path: str, **kw: Any) -> Call:
        return Call(method, path, **kw)

    return [
        r("GET", "/whoami", False, c("GET", "/whoami")),
        r("GET", "/admins", False, c("GET", "/admins")),
        r("POST", "/admins", True,
          c("POST", "/admins", json={"address": TAX_OTHER, "role": "registrar", "agency": "MOF-TAX"}),
          c("POST", "/admins", json={"address": MOH_NURSE, "role": "registrar", "agency": "MOH"})),
        r("POST", "/admins/revoke", True,
          c("POST", "/admins/revoke",
            json={"address": TAX_OTHER, "role": "registrar", "agency": "MOF-TAX"}),
          c("POST", "/admins/revoke",
            json={"address": MOH_NURSE, "role": "registrar", "agency": "MOH"})),
        r("GET", "/tokens", False, c("GET", "/tokens")),
        r("POST", "/tokens", True,
          c("POST", "/tokens", json={"name": "t", "role": "registrar", "agency": "MOF-TAX"}),
          c("POST", "/tokens", json={"name": "t", "role": "registrar", "agency": "MOH"})),
        r("DELETE", "/tokens/{token_id}", True, c("DELETE", f"/tokens/{ids.own_token}"),
          c("DELETE", f"/tokens/{ids.other_token}")),
        r("GET", ag, False, c("GET", ag)),
        r("GET", f"{ag}/tree", False, c("GET", f"{ag}/tree")),
        r("POST", ag, True,
          c("POST", ag, json={"code": "MOF-NEW", "name_en": "New", "kind": "directorate",
                              "domain": "new.mof.gov.example", "parent": "MOF"}),
          c("POST", ag, json={"code": "MOH-NEW", "name_en": "New", "kind": "directorate",
                              "domain": "new.moh.gov.example", "parent": "MOH"})),
        r("GET", f"{ag}/{{code}}", False, c("GET", f"{ag}/MOF-TAX"), c("GET", f"{ag}/MOH")),
        r("PATCH", f"{ag}/{{code}}", True, c("PATCH", f"{ag}/MOF-TAX", json={"name_en": "Taxes"}),
          c("PATCH", f"{ag}/MOH", json={"name_en": "Taken"})),
        r("POST", f"{ag}/{{code}}/move", True,
          c("POST", f"{ag}/MOF-NEW/move", json={"parent": "MOF-TAX"}),
          c("POST", f"{ag}/MOH/move", json={"parent": "MOF"})),
        r("POST", f"{ag}/{{code}}/trusted-cas", True,
          c("POST", f"{ag}/MOF-TAX/trusted-cas", json={"pem": ca}),
          c("POST", f"{ag}/MOH/trusted-cas", json={"pem": ca})),
        r("GET", emp, False, c("GET", emp)),
        r("POST", emp, True,
          c("POST", emp, json={"address": "new@tax.mof.gov.example", "agency": "MOF-TAX",
                               "name_en": "New"}),
          c("POST", emp, json={"address": "new@moh.gov.example", "agency": "MOH",
                               "name_en": "New"})),
        r("GET", f"{emp}/{{address}}", False, c("GET", f"{emp}/{TAX_CLERK}"),
          c("GET", f"{emp}/{MOH_DOCTOR}")),
        r("PATCH", f"{emp}/{{address}}", True,
          c("PATCH", f"{emp}/{TAX_CLERK}", json={"name_en": "Clerk"}),
          c("PATCH", f"{emp}/{MOH_DOCTOR}", json={"name_en": "Doctor"})),
        r("PUT", f"{emp}/{{address}}/status", True,
          c("PUT", f"{emp}/{TAX_CLERK}/status", json={"status": "active"}),
          c("PUT", f"{emp}/{MOH_DOCTOR}/status", json={"status": "suspended"})),
        r("POST", f"{emp}/{{address}}/password-reset", True,
          c("POST", f"{emp}/{TAX_CLERK}/password-reset", json={"password": STRONG}),
          c("POST", f"{emp}/{MOH_DOCTOR}/password-reset", json={"password": STRONG})),
        r("POST", f"{emp}/{{address}}/identities", True,
          c("POST", f"{emp}/{TAX_CLERK}/identities", json={"material": cert}),
          c("POST", f"{emp}/{MOH_DOCTOR}/identities", json={"material": cert_moh})),
        r("POST", f"{emp}/{{address}}/identities/revoke", True,
          c("POST", f"{emp}/{TAX_CLERK}/identities/revoke", json={"fingerprint": "AB" * 32}),
          c("POST", f"{emp}/{MOH_DOCTOR}/identities/revoke", json={"fingerprint": "AB" * 32}),
          inside_ok={404}),  # no such identity: the scope let it through to the lookup
        r("POST", "/directory/imports", True, c("POST", "/directory/imports", content=inside_csv),
          c("POST", "/directory/imports", content=outside_csv),
          outside_status={422}),  # MOH is unknown to MOF's administrator: "unknown parent"
        r("GET", "/jobs/{job_id}", False, c("GET", f"/jobs/{ids.own_job}"),
          c("GET", f"/jobs/{ids.other_job}")),
        r("GET", "/policy", False, c("GET", "/policy")),
        r("PUT", "/policy", True, c("PUT", "/policy", json={"text": "rules: []\n"})),
        r("GET", "/policy/versions", False, c("GET", "/policy/versions")),
        r("GET", "/policy/versions/{version_id}", False, c("GET", "/policy/versions/1")),
        r("GET", "/policy/versions/{version_id}/diff", False,
          c("GET", "/policy/versions/1/diff", params={"against": "1"})),
        r("POST", "/policy/validate", False, c("POST", "/policy/validate", json={"text": "x: 1\n"})),
        r("POST", "/policy/explain", False,
          c("POST", "/policy/explain", json={"sender": TAX_CLERK, "recipient": MOH_DOCTOR})),
        r("POST", "/policy/cases", False, c("POST", "/policy/cases", json={"text": "cases: []\n"})),
        r("GET", "/policy/hits", False, c("GET", "/policy/hits")),
        r("GET", "/messages/{registry}", False, c("GET", f"/messages/{tax}"),
          c("GET", f"/messages/{moh}")),
        r("POST", "/messages/{registry}/revocation", True,
          c("POST", f"/messages/{tax}/revocation", json={"reason": "withdrawn"}),
          c("POST", f"/messages/{moh}/revocation", json={"reason": "withdrawn"})),
        r("GET", "/queue", False, c("GET", "/queue")),
        r("GET", "/queue/{entry_id}", False, c("GET", f"/queue/{w.tax_entry}"),
          c("GET", f"/queue/{w.moh_entry}")),
        *[
            r("POST", f"/queue/{{entry_id}}/{verb}", True,
              c("POST", f"/queue/{w.tax_entry}/{verb}", json=body),
              c("POST", f"/queue/{w.moh_entry}/{verb}", json=body))
            for verb, body in [("hold", None), ("release", None), ("retry", None),
                               ("purge", {"reason": "table test"})]
        ],
        r("GET", "/audit/events", False, c("GET", "/audit/events")),
        r("GET", "/audit/verify", False, c("GET", "/audit/verify")),
        r("GET", "/access-trail", False, c("GET", "/access-trail")),
        r("GET", "/access-trail.csv", False, c("GET", "/access-trail.csv")),
        r("POST", f"{ag}/{{code}}/retire", True, c("POST", f"{ag}/MOF-NEW/retire"),
          c("POST", f"{ag}/MOH/retire")),
        # Alerts belong to no agency: no call outside.
        r("GET", "/alerts", False, c("GET", "/alerts")),
        r("POST", "/alerts/{alert_id}/acknowledgement", True,
          c("POST", f"/alerts/{w.alert}/acknowledgement", json={"note": "seen"}),
          auditor_writes=True),
    ]
# fmt: on


# Operations the table does not try: signing in and out, and /metrics (any role;
# tested with the live listener).
NOT_IN_TABLE = {("POST", "/session"), ("DELETE", "/session"), ("GET", "/metrics")}


async def dump(served: Served) -> str:
    """Every row of every table but the volatile ones: what must not change."""
    out = []
    async with served.world.app.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
        for name in sorted(set(names) - VOLATILE):
            rows_ = (await conn.execute(text(f'SELECT * FROM "{name}"'))).all()  # noqa: S608
            out.extend(f"{name} {tuple(row)!r}" for row in rows_)
    return "\n".join(out)


async def _job(client: httpx.AsyncClient, csv: str) -> str:
    started = await client.post("/directory/imports", content=csv,
                                headers={"content-type": "text/csv"})  # fmt: skip
    assert started.status_code == 202, started.text
    job = str(started.json()["job"])
    for _ in range(500):
        if (await client.get(f"/jobs/{job}")).json()["state"] in {"done", "failed"}:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError("the import job did not finish")


@pytest.fixture
async def table(barid: object, tmp_path: Path) -> AsyncIterator[tuple[Served, list[Row]]]:
    async with served_world(tmp_path / "data") as served:
        async with served.client("system-admin") as admin, served.client("agency-admin") as mof:
            shipped = served.world.app.settings.policy_file.read_text(encoding="utf-8")
            applied = await admin.put("/policy", json={"text": shipped})
            assert applied.status_code == 201, applied.text  # version 1
            tokens = {t["name"]: t["id"] for t in (await admin.get("/tokens")).json()}
            made = await mof.post("/tokens", json={"name": "own", "role": "registrar",
                                                   "agency": "MOF-TAX"})  # fmt: skip
            assert made.status_code == 201, made.text
            row = "agency,MOF-JOB,Job,,directorate,job.mof.gov.example,MOF,,,,\n"
            own_job = await _job(mof, CSV_HEADER + row)
            row = "agency,MOH-JOB,Job,,directorate,job.moh.gov.example,MOH,,,,\n"
            other_job = await _job(admin, CSV_HEADER + row)
        ids = Ids(served.world, made.json()["token"]["id"], tokens["test system-admin"],
                  own_job, other_job)  # fmt: skip
        yield served, rows(ids)


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for path, operations in document["paths"].items():
        for method in operations:
            found.add((method.upper(), path.removeprefix("/api/v1")))
    return found


async def test_the_table_names_every_operation(table: tuple[Served, list[Row]]) -> None:
    served, rows_ = table
    async with served.client("system-admin") as admin:
        document = (await admin.get("/openapi.json")).json()
    named = {(row.method, row.template) for row in rows_}
    assert named | NOT_IN_TABLE == _operations(document)


def _policy(row: Row) -> bool:
    """Not an agency administrator's business: the policy itself (its audit-mode hits
    are audit events, read within the subtree), the whole audit chain's check, and
    alerts (gateway-wide, for system administrators and security auditors)."""
    if row.template == "/audit/verify" or row.template.startswith("/alerts"):
        return True
    return row.template.startswith("/policy") and row.template != "/policy/hits"


async def _each(
    client: httpx.AsyncClient, rows_: list[Row], pick: Callable[[Row], Call | None]
) -> list[tuple[Row, httpx.Response]]:
    answered = []
    for row in rows_:
        call = pick(row)
        if call is not None:
            answered.append((row, await call.send(client)))
    return answered


async def test_an_agency_admin_reaches_nothing_outside_its_subtree(
    table: tuple[Served, list[Row]],
) -> None:
    served, rows_ = table
    before = await dump(served)
    async with served.client("agency-admin") as mof:
        answered = await _each(mof, rows_, lambda row: row.outside)
        for row, response in answered:
            assert response.status_code in row.outside_status, (row.template, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        assert await dump(served) == before, "a refused request changed something"
        # Lists and reads show nothing of MOH's.
        for row, response in await _each(mof, rows_, lambda r: None if r.write else r.inside):
            if _policy(row):
                assert response.status_code in DENIED, row.template
                continue
            assert response.status_code in ALLOWED, (row.template, response.text)
            shown = response.text
            if row.template.startswith("/access-trail"):
                # A read in the trail is in scope when its reader or its message is: an
                # outsider reading an outside message is not.
                assert MOH_NURSE not in shown, row.template
            else:
                assert served.world.moh_message not in shown, row.template
            assert "MOH-JOB" not in shown and '"MOH"' not in shown, (row.template, shown)


async def test_an_agency_admin_may_do_everything_inside_its_subtree(
    table: tuple[Served, list[Row]],
) -> None:
    served, rows_ = table
    async with served.client("agency-admin") as mof:
        for row, response in await _each(mof, rows_, lambda row: row.inside):
            expected = DENIED if _policy(row) else row.inside_ok
            assert response.status_code in expected, (row.method, row.template, response.text)


async def test_a_security_auditor_reads_everything_and_changes_nothing(
    table: tuple[Served, list[Row]],
) -> None:
    served, rows_ = table
    before = await dump(served)
    async with served.client("security-auditor") as auditor:
        # Its acknowledgement of an alert is tried below, once the rest changed nothing.
        others = [row for row in rows_ if not row.auditor_writes]
        for pick in (lambda row: row.inside, lambda row: row.outside):
            for row, response in await _each(auditor, others, pick):
                if row.write:
                    assert response.status_code == 403, (row.method, row.template, response.text)
                elif row.template != "/jobs/{job_id}":  # jobs are their starter's only
                    assert response.status_code in ALLOWED, (row.template, response.text)
        assert await dump(served) == before, "a refused request changed something"
        # DESIGN §12: an auditor "changes nothing but alert acknowledgements". Its
        # acknowledgement is allowed and adds one audit event; a retry adds nothing.
        own = [row for row in rows_ if row.auditor_writes]
        for row, response in await _each(auditor, own, lambda row: row.inside):
            assert response.status_code == 200, (row.template, response.text)
            after = await dump(served)
            added = set(after.splitlines()) - set(before.splitlines())
            assert [line for line in added if line.startswith("audit_events ")] != []
            assert all(line.startswith(("audit_events ", "audit_head ")) for line in added)
            assert (await row.inside.send(auditor)).status_code == 200
            assert await dump(served) == after, "a retried acknowledgement changed something"
