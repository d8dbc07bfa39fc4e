"""The web admin's security pages over real HTTP: the audit trail (filters, paging,
chain status), the access trail (filters, paging, the CSV export the API gives) and
the alerts (acknowledge with a note), as a system administrator, a security auditor
and MOF's agency administrator, who sees only its subtree and may not touch alerts;
refusals in the page's words, CSRF on the acknowledgement, forged posts that change
nothing."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from admin.web import routes_security
from admin.web.catalogue import word
from testkit.admin_use_cases import MOH_NURSE
from testkit.admin_web import (
    AUDITOR,
    MOF_ADMIN,
    SYSTEM_ADMIN,
    WebWorld,
    csrf_of,
    sign_in,
    web_world,
)

_EVENT_ID = re.compile(r'<tr><td class="num">(\d+)</td>')
_ACCESS_ROW = re.compile(r"<tr><td><bdi")
_NEXT = re.compile(r'href="([^"]+)" rel="next"')


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        yield world


@contextlib.asynccontextmanager
async def _as(web: WebWorld, address: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web.base, timeout=30) as client:
        signed = await sign_in(client, address, web.code(address))
        assert signed.status_code == 303, signed.text
        yield client


def _html(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    assert " style=" not in response.text and "<script" not in response.text
    return response.text


async def _api_ids(web: WebWorld, role: str, path: str, key: str) -> list[int]:
    async with web.served.client(role) as api:
        answer = await api.get(path, params={"limit": 500})
        assert answer.status_code == 200, answer.text
        return [item[key] for item in answer.json()["items"]]


async def test_audit_trail_filters_paging_and_chain(
    web: WebWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _as(web, SYSTEM_ADMIN) as client:
        nav = _html(await client.get("/admin/dashboard"))
        assert 'href="/admin/security"' in nav
        first = await client.get("/admin/security")
        assert first.status_code == 303 and first.headers["location"] == "/admin/security/audit"
        text = _html(await client.get("/admin/security/audit?lang=en"))
        assert 'id="chain"' in text and "Intact: " in text
        shown = [int(i) for i in _EVENT_ID.findall(text)]
        assert shown == (await _api_ids(web, "system-admin", "/audit/events", "id"))[:50]
        assert 'href="/admin/security/alerts"' in text
        # A filter by action shows only those events, the filter kept in the form.
        only = _html(await client.get("/admin/security/audit?kind=verify.alert&lang=en"))
        assert len(_EVENT_ID.findall(only)) == 1 and 'value="verify.alert"' in only
        # Paging: newest first, a signed link to the older page, no event twice.
        monkeypatch.setattr(routes_security, "PAGE_SIZE", 2)
        seen: list[int] = []
        url: str | None = "/admin/security/audit"
        while url:
            page = _html(await client.get(url.replace("&amp;", "&")))
            seen += [int(i) for i in _EVENT_ID.findall(page)]
            found = _NEXT.search(page)
            url = found.group(1) if found else None
        assert seen == sorted(seen, reverse=True) == shown
        # Bad input: a time that is not one, an edited page link -> refused, in words.
        bad = _html(await client.get("/admin/security/audit?since=yesterday&lang=en"), 422)
        assert word("en", "page.invalid") in bad and "since" in bad
        forged = _html(await client.get("/admin/security/audit?cursor=AAAA&lang=en"), 422)
        assert word("en", "page.invalid") in forged and "Traceback" not in forged
        _html(await client.get("/admin/security/audit?actor=" + "a" * 400), 422)


async def test_agency_admin_sees_its_subtree_and_no_alerts(web: WebWorld) -> None:
    async with _as(web, MOF_ADMIN) as client:
        nav = _html(await client.get("/admin/dashboard"))
        assert 'href="/admin/security"' in nav
        text = _html(await client.get("/admin/security/audit?lang=en"))
        assert 'id="chain"' not in text and 'href="/admin/security/alerts"' not in text
        shown = [int(i) for i in _EVENT_ID.findall(text)]
        assert shown == (await _api_ids(web, "agency-admin", "/audit/events", "id"))[:50]
        everything = await _api_ids(web, "system-admin", "/audit/events", "id")
        assert set(shown) < set(everything)
        access = _html(await client.get("/admin/security/access?lang=en"))
        assert web.served.world.tax_message in access and MOH_NURSE not in access
        assert len(_ACCESS_ROW.findall(access)) == 2
        # Asking for the outsider by name finds nothing; the export holds the same.
        outsider = _html(await client.get(f"/admin/security/access?employee={MOH_NURSE}"))
        assert word("ar", "sec.none") in outsider
        export = await client.get("/admin/security/access.csv")
        assert export.status_code == 200 and MOH_NURSE not in export.text
        assert len(export.text.strip().splitlines()) == 3
        # Alerts belong to no agency: the page and a forged acknowledgement are 403.
        refused = _html(await client.get("/admin/security/alerts?lang=en"), 403)
        assert word("en", "page.forbidden") in refused
        csrf = csrf_of(await client.get("/admin/security/audit"))
        alert = web.served.world.alert
        post = await client.post(f"/admin/security/alerts/{alert}/acknowledge",
                                 data={"csrf": csrf, "note": "a forged note"})  # fmt: skip
        _html(post, 403)
    async with _as(web, AUDITOR) as client:
        still = _html(await client.get("/admin/security/alerts?state=open"))
        assert f'id="alert-{alert}"' in still and "a forged note" not in still


async def test_access_trail_and_its_csv_export(web: WebWorld) -> None:
    async with _as(web, SYSTEM_ADMIN) as client:
        text = _html(await client.get("/admin/security/access?lang=en"))
        assert len(_ACCESS_ROW.findall(text)) == 3 and MOH_NURSE in text
        link = 'href="/admin/security/access.csv"'
        assert link in text
        filtered = _html(await client.get(f"/admin/security/access?employee={MOH_NURSE}"))
        assert len(_ACCESS_ROW.findall(filtered)) == 1
        assert 'href="/admin/security/access.csv?employee=nurse%40moh.gov.example"' in filtered
        export = await client.get(f"/admin/security/access.csv?employee={MOH_NURSE}")
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("text/csv")
        assert "attachment" in export.headers["content-disposition"]
        async with web.served.client("system-admin") as api:
            same = await api.get("/access-trail.csv", params={"employee": MOH_NURSE})
        assert export.text == same.text and export.text.startswith("at,employee,registry")
        assert len(export.text.strip().splitlines()) == 2
        bad = await client.get("/admin/security/access.csv?since=never&lang=en")
        assert word("en", "page.invalid") in _html(bad, 422)
    async with httpx.AsyncClient(base_url=web.base, timeout=30) as stranger:
        away = await stranger.get("/admin/security/access.csv")
        assert away.status_code == 303 and away.headers["location"] == "/admin/sign-in"


async def test_auditor_acknowledges_an_alert_with_a_note(web: WebWorld) -> None:
    alert = web.served.world.alert
    async with _as(web, AUDITOR) as client:
        text = _html(await client.get("/admin/security/alerts?lang=en"))
        assert f'id="alert-{alert}"' in text and "forgery-spike" in text
        assert f'action="/admin/security/alerts/{alert}/acknowledge"' in text
        csrf = csrf_of(await client.get("/admin/security/alerts"))
        target = f"/admin/security/alerts/{alert}/acknowledge"
        # Without the CSRF field, or with a wrong one: refused, nothing acknowledged.
        _html(await client.post(target, data={"note": "seen"}), 403)
        _html(await client.post(target, data={"csrf": "x" * 43, "note": "seen"}), 403)
        assert f'id="alert-{alert}"' in _html(await client.get("/admin/security/alerts"))
        # A note on two lines is refused with the service's words; nothing changes.
        bad = await client.post(target, data={"csrf": csrf, "note": "a\nb"})
        assert "one line" in _html(bad, 422)
        missing = await client.post("/admin/security/alerts/999999/acknowledge",
                                    data={"csrf": csrf, "note": "x"})  # fmt: skip
        _html(missing, 404)
        done = await client.post(target, data={"csrf": csrf, "note": "checked with the <NOC>"})
        assert done.status_code == 303, done.text
        assert done.headers["location"] == f"/admin/security/alerts?state=acknowledged&done={alert}"
        shown = _html(await client.get(done.headers["location"] + "&lang=en"))
        assert word("en", "sec.done").format(id=alert) in shown
        assert "checked with the &lt;NOC&gt;" in shown and AUDITOR in shown
        assert 'name="note"' not in shown
        opened = _html(await client.get("/admin/security/alerts?state=open"))
        assert f'id="alert-{alert}"' not in opened
        # The acknowledgement is in the audit trail, and the auditor sees no chain controls.
        trail = _html(await client.get("/admin/security/audit?kind=alert.ack"))
        assert (
            len(_EVENT_ID.findall(trail)) == 1
            and 'method="post" action="/admin/security' not in trail
        )
        assert _html(await client.get("/admin/security/alerts?state=bogus"), 422)
        assert _html(await client.get("/admin/security/alerts?kind=bogus"), 422)
