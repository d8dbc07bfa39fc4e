"""Form sizes and file uploads of the web admin over real HTTP: the policy editor,
case tables, the CSV import and key/certificate registration take up to 1 MiB
(a real Arabic policy is far over 16 KiB once URL-encoded), every other form
16 KiB; a body over its route's limit answers 413 and changes nothing. The CSV
import and key/CA registration also take a file (multipart/form-data), under the
same limits, CSRF and scope rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from admin.services import directory, employees, policy_versions
from admin.web.catalogue import word
from admin.web.session import LARGE_FORM, MAX_FORM
from gateway.store import audit
from testkit.admin_use_cases import TAX_OTHER, ca_pem, person_cert
from testkit.admin_web import CLI, MOF_ADMIN, SYSTEM_ADMIN, WebWorld, csrf_of, web_world
from testkit.admin_web_roles import AUDITOR, add_person, signed_in_as

POLICY = """\
version: 1
default:
  effect: deny
  reason: {en: Not allowed., ar: غير مسموح.}
rules:
  - id: finance-to-health
    description: The tax directorate writes to health.
    sender: {agency: MOF-TAX}
    recipient: {agency: MOH}
    effect: allow
"""
# An Arabic commentary: about 40 KiB of text, well over 100 KiB URL-encoded.
COMMENTARY = "".join(f"# {n}: تراسل مديرية الضرائب وزارة الصحة وفق هذه القاعدة.\n"
                     for n in range(800))  # fmt: skip
CSV = (
    "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"
    "agency,MOF-BUD,Budget,الميزانية,directorate,budget.mof.gov.example,MOF,,,,\n"
)


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        await add_person(world, AUDITOR, "security-auditor", None)
        yield world


def _page(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert " style=" not in response.text and "<script" not in response.text
    return response.text


async def _versions(web: WebWorld) -> list[int]:
    return [v.id for v in await policy_versions.policy_history(CLI, web.served.world.app)]


async def _audit_count(web: WebWorld) -> int:
    async with web.served.world.app.sessions() as session:
        return await audit.chain_length(session)


async def _codes(web: WebWorld) -> set[str]:
    return {a.code for a in await directory.list_agencies(CLI, web.served.world.app)}


async def test_a_large_arabic_policy_is_applied_and_an_oversized_one_refused(
    web: WebWorld,
) -> None:
    text = COMMENTARY + POLICY
    assert len(text.encode()) > 3 * MAX_FORM
    async with signed_in_as(web, SYSTEM_ADMIN) as client:
        csrf = csrf_of(await client.get("/admin/policy"))
        checked = await client.post("/admin/policy", data={
            "csrf": csrf, "text": text, "action": "check"})  # fmt: skip
        _page(checked, 200)
        applied = await client.post("/admin/policy", data={
            "csrf": csrf, "text": text, "action": "apply"})  # fmt: skip
        assert applied.status_code == 303, applied.text
        [first] = await _versions(web)
        stored = await policy_versions.named_version(CLI, web.served.world.app, first)
        assert stored.version.text == text
        # Over 1 MiB: 413 with a clear page, nothing applied or audited.
        before = await _audit_count(web)
        huge = "# " + "ح" * (LARGE_FORM // 5) + "\n" + POLICY  # 1.2 MiB URL-encoded
        refused = await client.post("/admin/policy?lang=en", data={
            "csrf": csrf, "text": huge, "action": "apply"})  # fmt: skip
        shown = _page(refused, 413)
        assert word("en", "form.too_large").format(size="1 MiB") in shown
        assert 'href="/admin/policy"' in shown
        assert await _versions(web) == [first] and await _audit_count(web) == before
        # Case tables take large texts too (the report, not a 413).
        cases = await client.post("/admin/policy/cases", data={
            "csrf": csrf, "text": COMMENTARY + "[]\n"})  # fmt: skip
        assert cases.status_code != 413
        assert (await client.post("/admin/policy/cases", data={
            "csrf": csrf, "text": huge})).status_code == 413  # fmt: skip


async def test_other_forms_keep_the_16_kib_limit(web: WebWorld) -> None:
    app = web.served.world.app
    async with signed_in_as(web, SYSTEM_ADMIN) as client:
        csrf = csrf_of(await client.get("/admin/directory"))
        long_name = "م" * (MAX_FORM // 2)
        refused = await client.post("/admin/directory/agencies/MOF/names?lang=en", data={
            "csrf": csrf, "name_ar": long_name})  # fmt: skip
        shown = _page(refused, 413)
        assert word("en", "form.too_large").format(size="16 KiB") in shown
        assert 'href="/admin/directory/agencies/MOF"' in shown
        assert (await directory.show_agency(CLI, app, "MOF")).name_ar != long_name
        # Without a session, an oversized post still only leads to sign-in.
        async with httpx.AsyncClient(base_url=web.base, timeout=30) as anonymous:
            gone = await anonymous.post("/admin/policy", data={"text": "x" * LARGE_FORM * 2})
            assert gone.status_code == 303


async def test_csv_import_from_a_file(web: WebWorld) -> None:
    async with signed_in_as(web, MOF_ADMIN) as client:
        got = await client.get("/admin/directory/import?lang=en")
        form = _page(got, 200)
        assert 'enctype="multipart/form-data"' in form and 'type="file"' in form
        assert 'for="csv-file"' in form
        csrf = csrf_of(got)
        # No CSRF field: refused, nothing imported.
        no_csrf = await client.post("/admin/directory/import", data={"csv": ""},
                                    files={"csv_file": ("d.csv", CSV.encode(), "text/csv")})  # fmt: skip
        _page(no_csrf, 403)
        assert "MOF-BUD" not in await _codes(web)
        # Over 1 MiB: 413, nothing imported.
        padding = CSV + "".join(f"agency,MOF-X{n},X,,directorate,x{n}.mof.gov.example,MOF,,,,\n"
                                for n in range(LARGE_FORM // 50))  # fmt: skip
        assert len(padding) > LARGE_FORM
        big = await client.post("/admin/directory/import", data={"csrf": csrf, "csv": ""},
                                files={"csv_file": ("d.csv", padding.encode(), "text/csv")})  # fmt: skip
        _page(big, 413)
        assert "MOF-BUD" not in await _codes(web)
        # A file outside MOF: nothing imported.
        outside = CSV.replace(",MOF,,,,", ",MOH,,,,").encode()
        answer = await client.post("/admin/directory/import", data={"csrf": csrf, "csv": ""},
                                   files={"csv_file": ("d.csv", outside, "text/csv")})  # fmt: skip
        assert answer.status_code in (404, 422)
        assert "MOF-BUD" not in await _codes(web)
        started = await client.post("/admin/directory/import", data={"csrf": csrf, "csv": ""},
                                    files={"csv_file": ("d.csv", CSV.encode(), "text/csv")})  # fmt: skip
        assert started.status_code == 303, started.text
        for _ in range(100):
            if "MOF-BUD" in await _codes(web):
                break
            job = _page(await client.get(started.headers["location"]), 200)
            if 'http-equiv="refresh"' not in job:
                break
        assert "MOF-BUD" in await _codes(web)


async def test_key_and_ca_registration_from_a_file(web: WebWorld) -> None:
    app = web.served.world.app
    url = f"/admin/directory/employees/{TAX_OTHER}"
    pem, fingerprint = person_cert(TAX_OTHER)
    async with signed_in_as(web, MOF_ADMIN) as client:
        got = await client.get(url)
        shown = _page(got, 200)
        assert 'name="material_file"' in shown and 'enctype="multipart/form-data"' in shown
        csrf = csrf_of(got)
        no_csrf = await client.post(f"{url}/identities", data={"material": ""},
                                    files={"material_file": ("c.pem", pem, "application/x-pem-file")})  # fmt: skip
        _page(no_csrf, 403)
        assert (await employees.show_employee(CLI, app, TAX_OTHER)).identities == []
        done = await client.post(f"{url}/identities", data={"csrf": csrf, "material": ""},
                                 files={"material_file": ("c.pem", pem, "application/x-pem-file")})  # fmt: skip
        assert done.status_code == 303, done.text
        person = await employees.show_employee(CLI, app, TAX_OTHER)
        assert [i.fingerprint for i in person.identities] == [fingerprint]
        # A CA for MOH (outside MOF) from a file: 404, nothing trusted.
        forged = await client.post("/admin/directory/agencies/MOH/trusted-cas",
                                   data={"csrf": csrf, "pem": ""},
                                   files={"pem_file": ("ca.pem", ca_pem("Forged"), "text/plain")})  # fmt: skip
        _page(forged, 404)
        assert (await directory.show_agency(CLI, app, "MOH")).trusted_cas == []
        trusted = await client.post("/admin/directory/agencies/MOF/trusted-cas",
                                    data={"csrf": csrf, "pem": ""},
                                    files={"pem_file": ("ca.pem", ca_pem("Finance CA"), "text/plain")})  # fmt: skip
        assert trusted.status_code == 303, trusted.text
        assert len((await directory.show_agency(CLI, app, "MOF")).trusted_cas) == 1
    async with signed_in_as(web, AUDITOR) as auditor:
        csrf = csrf_of(await auditor.get("/admin/directory"))
        refused = await auditor.post("/admin/directory/agencies/MOH/trusted-cas",
                                     data={"csrf": csrf, "pem": ""},
                                     files={"pem_file": ("ca.pem", ca_pem("Forged"), "text/plain")})  # fmt: skip
        _page(refused, 403)
        assert (await directory.show_agency(CLI, app, "MOH")).trusted_cas == []
