"""The directory pages over real HTTP: the agency tree, an agency's page and its
forms (add an employee, add a child agency, change names, move, retire after a
confirmation, trust a CA), for a system administrator; scoped to MOF for MOF's
agency administrator (everything outside answers 404 and changes nothing); an
auditor sees no write control and its forged posts answer 403; a post without
its CSRF field is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from admin.services import directory, employees
from admin.web.catalogue import word
from testkit.admin_use_cases import MOH_DOCTOR, MOH_NURSE, TAX_OTHER, ca_pem, person_cert
from testkit.admin_web import (
    CLI,
    MOF_ADMIN,
    SYSTEM_ADMIN,
    WebWorld,
    csrf_of,
    sign_in,
    web_world,
)

AUDITOR = MOH_NURSE
FORMS = ("employees", "children", "names", "move", "trusted-cas", "retire")


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world  # MOH's nurse is its security auditor


@pytest.fixture
async def client(web: WebWorld) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web.base, timeout=30) as http:
        yield http


async def _as(client: httpx.AsyncClient, web: WebWorld, who: str) -> None:
    assert (await sign_in(client, who, web.code(who))).status_code == 303


def _ok(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    assert "<script" not in response.text and " style=" not in response.text
    return response.text


async def _post(client: httpx.AsyncClient, path: str, form: dict[str, str]) -> httpx.Response:
    csrf = csrf_of(await client.get("/admin/directory"))
    return await client.post(path, data={"csrf": csrf, **form})


async def test_tree_agency_page_and_forms_as_system_admin(
    web: WebWorld, client: httpx.AsyncClient
) -> None:
    app = web.served.world.app
    await _as(client, web, SYSTEM_ADMIN)
    tree = _ok(await client.get("/admin/directory?lang=en"))
    for code in ("MOF", "MOF-TAX", "MOH"):
        assert f'href="/admin/directory/agencies/{code}"' in tree
    assert 'href="/admin/directory/import"' in tree and 'href="/admin/directory"' in tree
    mof = _ok(await client.get("/admin/directory/agencies/MOF?lang=en"))
    assert "MOF-TAX" in mof and word("en", "dir.cas_none") in mof
    for form in FORMS[:5]:
        assert f'action="/admin/directory/agencies/MOF/{form}"' in mof
    assert 'for="e-address"' in mof and 'href="/admin/directory/agencies/MOF/retire"' in mof
    # Add an employee: post, redirect to their page, listed on the agency's page.
    added = await _post(client, "/admin/directory/agencies/MOF/employees", {
        "address": "new@mof.gov.example", "name_en": "New Person", "name_ar": "شخص جديد",
        "role": "staff", "clearance": "confidential", "password": "",
    })  # fmt: skip
    assert added.status_code == 303, added.text
    assert added.headers["location"].startswith("/admin/directory/employees/new@mof.gov.example")
    shown = await employees.show_employee(CLI, app, "new@mof.gov.example")
    assert (shown.agency, shown.clearance) == ("MOF", "confidential")
    assert "new@mof.gov.example" in _ok(await client.get("/admin/directory/agencies/MOF"))
    # Bad input: every problem shown, nothing added.
    bad = await _post(client, "/admin/directory/agencies/MOF/employees",
                      {"address": "not an address", "name_en": "X", "clearance": "top"})  # fmt: skip
    assert bad.status_code == 422 and word("ar", "page.invalid") in bad.text
    assert len(await employees.list_employees(CLI, app, "MOF")) == 1
    # Add a child agency, change its names, trust a CA, move it, retire it.
    child = await _post(client, "/admin/directory/agencies/MOF/children", {
        "code": "MOF-CUS", "name_en": "Customs", "name_ar": "الجمارك", "kind": "directorate",
        "domain": "customs.mof.gov.example",
    })  # fmt: skip
    assert child.status_code == 303 and child.headers["location"].startswith(
        "/admin/directory/agencies/MOF-CUS?done=agency-added"
    )
    page = _ok(await client.get(child.headers["location"] + "&lang=en"))
    assert word("en", "dir.done.agency-added") in page and "Customs" in page
    renamed = await _post(client, "/admin/directory/agencies/MOF-CUS/names",
                          {"name_en": "Customs Authority", "name_ar": "هيئة الجمارك"})  # fmt: skip
    assert renamed.status_code == 303
    pem = ca_pem("Customs CA").decode()
    trusted = await _post(client, "/admin/directory/agencies/MOF-CUS/trusted-cas", {"pem": pem})
    assert trusted.status_code == 303
    not_pem = await _post(client, "/admin/directory/agencies/MOF-CUS/trusted-cas", {"pem": "x"})
    assert not_pem.status_code == 422 and "not a PEM X.509 certificate" in not_pem.text
    moved = await _post(client, "/admin/directory/agencies/MOF-CUS/move", {"parent": "MOF-TAX"})
    assert moved.status_code == 303
    detail = await directory.show_agency(CLI, app, "MOF-CUS")
    assert (detail.name_en, detail.parent, len(detail.trusted_cas)) == (
        "Customs Authority",
        "MOF-TAX",
        1,
    )
    confirm = _ok(await client.get("/admin/directory/agencies/MOF-CUS/retire?lang=en"))
    assert 'action="/admin/directory/agencies/MOF-CUS/retire"' in confirm
    assert detail.status == "active"
    retired = await _post(client, "/admin/directory/agencies/MOF-CUS/retire", {})
    assert retired.status_code == 303
    assert (await directory.show_agency(CLI, app, "MOF-CUS")).status == "suspended"
    assert _ok(await client.get("/admin/directory/agencies/NOPE"), 404)


async def test_a_form_without_its_csrf_field_changes_nothing(
    web: WebWorld, client: httpx.AsyncClient
) -> None:
    await _as(client, web, SYSTEM_ADMIN)
    for token in ({}, {"csrf": "x" * 43}):
        refused = await client.post("/admin/directory/agencies/MOF/children", data={
            **token, "code": "MOF-X", "name_en": "X", "kind": "entity", "domain": "x.example",
        })  # fmt: skip
        _ok(refused, 403)
    agencies = await directory.list_agencies(CLI, web.served.world.app)
    assert "MOF-X" not in [a.code for a in agencies]


async def test_mof_admin_sees_and_reaches_nothing_outside_mof(
    web: WebWorld, client: httpx.AsyncClient
) -> None:
    app = web.served.world.app
    await _as(client, web, MOF_ADMIN)
    tree = _ok(await client.get("/admin/directory?lang=en"))
    assert "MOF-TAX" in tree and "MOH" not in tree and "Health" not in tree
    mof = _ok(await client.get("/admin/directory/agencies/MOF?lang=en"))
    assert 'action="/admin/directory/agencies/MOF/employees"' in mof
    assert "/admin/directory/agencies/MOF/retire" not in mof  # not its own agency
    assert "/retire" in _ok(await client.get("/admin/directory/agencies/MOF-TAX"))
    _ok(await client.get("/admin/directory/agencies/MOH"), 404)
    _ok(await client.get("/admin/directory/agencies/NOPE"), 404)
    _ok(await client.get("/admin/directory/agencies/MOH/retire"), 404)
    _ok(await client.get("/admin/directory/agencies/MOF/retire"), 403)
    forged = {
        "employees": {"address": "x@moh.gov.example", "name_en": "X"},
        "children": {"code": "MOH-X", "name_en": "X", "kind": "entity", "domain": "x.example"},
        "names": {"name_en": "Hijacked"},
        "move": {"parent": "MOF"},
        "trusted-cas": {"pem": ca_pem("Forged").decode()},
        "retire": {},
    }
    for form, fields in forged.items():
        _ok(await _post(client, f"/admin/directory/agencies/MOH/{form}", fields), 404)
    # Moving its own agency under MOH is outside too.
    _ok(await _post(client, "/admin/directory/agencies/MOF-TAX/move", {"parent": "MOH"}), 404)
    moh = await directory.show_agency(CLI, app, "MOH")
    assert (moh.name_en, moh.status, moh.employees, moh.trusted_cas) == ("Health", "active", 2, [])
    assert [c.code for c in moh.subtree.children] == []
    assert (await directory.show_agency(CLI, app, "MOF-TAX")).parent == "MOF"


async def test_an_auditor_reads_without_controls_and_cannot_post(
    web: WebWorld, client: httpx.AsyncClient
) -> None:
    app = web.served.world.app
    await _as(client, web, AUDITOR)
    tree = _ok(await client.get("/admin/directory"))
    assert "MOH" in tree and "/admin/directory/import" not in tree
    moh = _ok(await client.get("/admin/directory/agencies/MOH"))
    assert "<form" in moh  # sign-out only
    assert moh.count("<form") == 1 and "/retire" not in moh
    _ok(await client.get("/admin/directory/agencies/MOF-TAX/retire"), 403)
    for form in FORMS:
        fields = {"address": "x@moh.gov.example", "name_en": "X", "code": "MOH-X",
                  "kind": "entity", "domain": "x.example", "parent": "MOF",
                  "pem": ca_pem("Forged").decode()}  # fmt: skip
        _ok(await _post(client, f"/admin/directory/agencies/MOH/{form}", fields), 403)
    moh_now = await directory.show_agency(CLI, app, "MOH")
    assert (moh_now.name_en, moh_now.parent, moh_now.status, moh_now.employees) == (
        "Health",
        None,
        "active",
        2,
    )


GOOD_CSV = (
    "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"
    "agency,MOF-BUD,Budget,الميزانية,directorate,budget.mof.gov.example,MOF,,,,\n"
    "employee,,Planner,,,,,planner@budget.mof.gov.example,MOF-BUD,staff,internal\n"
)
BAD_CSV = (
    "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"
    "agency,MOF-OK,Fine,,directorate,ok.mof.gov.example,MOF,,,,\n"
    "agency,MOF-BAD,Bad,,castle,bad.mof.gov.example,MOF,,,,\n"
    "employee,,Someone,,,,,not-an-address,MOF,staff,internal\n"
)


async def _job_done(client: httpx.AsyncClient, where: str) -> str:
    for _ in range(100):
        page = _ok(await client.get(where + "?lang=en"))
        if 'http-equiv="refresh"' not in page:
            return page
        assert 'content="2"' in page
        await _sleep()
    raise AssertionError("the import job did not finish")


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.1)


async def test_import_reports_every_bad_row_then_imports_a_good_file(
    web: WebWorld, client: httpx.AsyncClient
) -> None:
    app = web.served.world.app
    await _as(client, web, MOF_ADMIN)
    form = _ok(await client.get("/admin/directory/import?lang=en"))
    assert 'for="csv"' in form and 'action="/admin/directory/import"' in form
    bad = await _post(client, "/admin/directory/import", {"csv": BAD_CSV})
    text = _ok(bad, 422)
    assert "line 3:" in text and "line 4:" in text and "castle" in text
    assert "MOF-BAD" in text  # the pasted text is kept for correcting
    assert {a.code for a in await directory.list_agencies(CLI, app)} == {"MOF", "MOF-TAX", "MOH"}
    # Rows outside MOF read as unknown (404), nothing imported.
    outside = GOOD_CSV.replace(",MOF,,,,", ",MOH,,,,")
    outside_answer = await _post(client, "/admin/directory/import", {"csv": outside})
    assert outside_answer.status_code in (404, 422)
    assert "MOF-BUD" not in {a.code for a in await directory.list_agencies(CLI, app)}
    started = await _post(client, "/admin/directory/import", {"csv": GOOD_CSV})
    assert started.status_code == 303, started.text
    where = started.headers["location"]
    assert where.startswith("/admin/directory/import/")
    done = await _job_done(client, where)
    assert word("en", "dir.import.state.done") in done
    assert "planner@budget.mof.gov.example" in done and "2 of 2 rows" in done
    assert (await employees.show_employee(CLI, app, "planner@budget.mof.gov.example")).agency == (
        "MOF-BUD"
    )
    # The job is the starter's: another account gets 404.
    async with httpx.AsyncClient(base_url=web.base, timeout=30) as other:
        await _as(other, web, AUDITOR)
        _ok(await other.get(where), 404)
        _ok(await other.get("/admin/directory/import"), 403)
        _ok(await _post(other, "/admin/directory/import", {"csv": GOOD_CSV}), 403)
    no_csrf = await client.post("/admin/directory/import", data={"csv": GOOD_CSV})
    _ok(no_csrf, 403)


EMPLOYEE_FORMS = ("change", "status", "password", "identities", "identities/revoke")


async def test_employee_page_and_its_forms(web: WebWorld, client: httpx.AsyncClient) -> None:
    app = web.served.world.app
    await _as(client, web, MOF_ADMIN)
    url = f"/admin/directory/employees/{TAX_OTHER}"
    page = _ok(await client.get(url + "?lang=en"))
    assert 'href="/admin/directory/agencies/MOF-TAX"' in page
    for form in EMPLOYEE_FORMS[:4]:
        assert f'action="{url}/{form}"' in page
    changed = await _post(
        client,
        f"{url}/change",
        {"name_en": "Other Person", "clearance": "secret", "role": "auditor"},
    )
    assert changed.status_code == 303
    assert word("en", "dir.done.employee-changed") in _ok(
        await client.get(changed.headers["location"] + "&lang=en")
    )
    pem, fingerprint = person_cert(TAX_OTHER)
    registered = await _post(client, f"{url}/identities", {"material": pem.decode()})
    assert registered.status_code == 303, registered.text
    shown = _ok(await client.get(url))
    assert fingerprint in shown and f'action="{url}/identities/revoke"' in shown
    weak = await _post(client, f"{url}/password", {"password": "zqzqzq"})
    assert weak.status_code == 422 and "zqzqzq" not in weak.text
    reset = await _post(client, f"{url}/password", {"password": "a long and fine pass phrase 9"})
    assert reset.status_code == 303
    assert "a long and fine pass phrase 9" not in _ok(await client.get(url))
    suspended = await _post(client, f"{url}/status", {"status": "suspended"})
    assert suspended.status_code == 303
    assert 'name="status" value="active"' in _ok(await client.get(url))
    revoked = await _post(client, f"{url}/identities/revoke", {"fingerprint": fingerprint})
    assert revoked.status_code == 303
    person = await employees.show_employee(CLI, app, TAX_OTHER)
    assert (person.name_en, person.clearance, person.role, person.status, person.has_password) == (
        "Other Person",
        "secret",
        "auditor",
        "suspended",
        True,
    )
    assert person.identities == [] or all(i.fingerprint != fingerprint for i in person.identities)
    # Outside MOF: the page and every form answer 404 and change nothing.
    outside = f"/admin/directory/employees/{MOH_DOCTOR}"
    _ok(await client.get(outside), 404)
    _ok(await client.get("/admin/directory/employees/nobody@nowhere.example"), 404)
    doctor_pem, _ = person_cert(MOH_DOCTOR)
    fields = {"name_en": "X", "status": "suspended", "password": "a long and fine pass phrase 9",
              "material": doctor_pem.decode(), "fingerprint": "AB" * 32}  # fmt: skip
    for form in EMPLOYEE_FORMS:
        _ok(await _post(client, f"{outside}/{form}", fields), 404)
    doctor = await employees.show_employee(CLI, app, MOH_DOCTOR)
    assert (doctor.name_en, doctor.status, doctor.identities) == ("Person", "active", [])
    # An auditor: no forms, forged posts 403.
    async with httpx.AsyncClient(base_url=web.base, timeout=30) as other:
        await _as(other, web, AUDITOR)
        seen = _ok(await other.get(outside))
        assert seen.count("<form") == 1
        for form in EMPLOYEE_FORMS:
            _ok(await _post(other, f"{outside}/{form}", fields), 403)
        _ok(await other.post(f"{outside}/status", data={"status": "suspended"}), 403)
    doctor = await employees.show_employee(CLI, app, MOH_DOCTOR)
    assert (doctor.name_en, doctor.status, doctor.identities) == ("Person", "active", [])
