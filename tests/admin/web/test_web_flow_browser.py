"""The web admin's whole day in one browser flow, on a running gateway: the demo
government's gateway (real SMTP, IMAP, delivery, and the admin listener over
HTTPS), one official letter submitted over SMTP and read over IMAP by its
recipient, then Playwright drives Debian's Chromium as the demo's system
administrator through: sign-in with a TOTP code; adding an agency and an
employee; uploading the employee's X.509 certificate through the file input; a
CSV import with a bad row (every problem shown, nothing imported), then a good
one (its progress to the end); a policy with an error (shown with its line, not
applied), then a good one (applied, and its "policy.apply" event on the audit
page); explaining a decision; finding the letter by registry number and by a
copy's trace code; revoking it (reason, confirmation); reading the audit trail;
exporting the access trail (the CSV arrives, naming the recipient's read).

Once in Arabic at 390 CSS pixels and once in English at 1280 (the other two
combinations of every page are the other browser tests'): the right language
and direction, nothing wider than the window, no CSP violation, no serious or
critical accessibility violation (axe-core, when installed) and a screenshot of
every page (testkit.chromium's directory), plus the verification radar page in
both languages at both widths.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from admin.api.wiring import admin_app_for
from admin.web.catalogue import word
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.models import Message, MessageCopy
from gateway.verification.radar import Alert, audit_alerts
from testkit.admin_use_cases import person_cert
from testkit.axe import assert_accessible, axe_available, install_axe
from testkit.chromium import screenshot_dir
from testkit.gateway import Live, running
from testkit.messages import pgp_mime
from testkit.web_browser import Shots, open_browser, shoot

ADMIN = "director@cab.gov.example"  # the demo's system administrator (TOTP enrolled)
SENDER = "minister@moh.gov.example"
RECIPIENT = "minister@mof.gov.example"
REASON = {"ar": "أُرسلت إلى الجهة الخطأ", "en": "Sent to the wrong agency"}
BAD_CSV = (
    "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"
    "agency,MOF-OK,Fine,,directorate,ok.mof.gov.example,MOF,,,,\n"
    "agency,MOF-BAD,Bad,,castle,bad.mof.gov.example,MOF,,,,\n"
)
GOOD_CSV = (
    "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"
    "agency,MOF-BUD2,Budget office,مكتب الميزانية,directorate,bud2.mof.gov.example,MOF,,,,\n"
    "employee,,Planner,,,,,planner@bud2.mof.gov.example,MOF-BUD2,staff,internal\n"
)
AUDIT_RULE = """
  - id: web-audit-large
    description: Log (only) letters of 10 MiB or more.
    mode: audit
    conditions:
      size: {at_least: 10MiB}
    effect: deny
    reason:
      en: Letters of 10 MiB or more will be refused.
      ar: ستُرفض الرسائل التي يبلغ حجمها 10 ميغابايت أو أكثر.
"""


@dataclass
class World:
    live: Live
    base: str
    registry: str
    trace: str  # the recipient's copy's trace code
    totp: str
    policy: str  # the demo's policy text


@dataclass
class Flow:
    page: Any
    lang: Any
    width: int
    base: str
    out: Path
    console: list[str]
    axe: bool
    shots: list[Path] = field(default_factory=list)

    def w(self, key: str) -> str:
        return word(self.lang, key)

    async def go(self, path: str) -> None:
        await self.page.goto(f"{self.base}{path}")

    async def shot(self, name: str) -> None:
        self.shots.append(await shoot(self.page, self.lang, f"flow-{name}", self.width,
                                      self.out, self.console))  # fmt: skip
        if self.axe:
            await assert_accessible(self.page, f"flow-{name} {self.lang} {self.width}")

    async def click(self, name: str, scope: Any = None) -> None:
        where = scope if scope is not None else self.page
        await where.get_by_role("button", name=self.w(name), exact=True).click()
        await self.page.wait_for_load_state("load")


def _read_over_imap(live: Live) -> None:
    """The recipient reads its INBOX over IMAP (STARTTLS): an access-trail entry."""
    client = imaplib.IMAP4("127.0.0.1", live.imap_port, timeout=15)
    try:
        client.starttls(live.tls)
        client.login(RECIPIENT, live.credentials[RECIPIENT]["password"])
        assert client.select("INBOX")[0] == "OK"
        assert client.uid("FETCH", "1:*", "(BODY.PEEK[])")[0] == "OK"
    finally:
        client.logout()


async def _letter(live: Live, gnupghome: Path) -> tuple[str, str]:
    """A signed letter from SENDER to RECIPIENT accepted over SMTP and delivered:
    its registry number and the recipient's copy's trace code."""
    code = live.credentials[SENDER]["code"]
    raw = pgp_mime(gnupghome, SENDER, SENDER, [RECIPIENT], extra=[("Barid-Employee-Code", code)])
    answer, text = await live.send(SENDER, [RECIPIENT], raw)
    assert answer == 250, text
    registry = text.split()[-1]
    await live.settle()
    async with live.gateway.sessions() as session:
        trace = await session.scalar(
            select(MessageCopy.trace_code)
            .join(Message, Message.id == MessageCopy.message_id)
            .where(Message.registry_number == registry, MessageCopy.recipient == RECIPIENT)
        )
    assert trace, registry
    await asyncio.to_thread(_read_over_imap, live)
    # One radar alert, as the public verification API's radar writes it.
    await audit_alerts(live.gateway.sessions, live.gateway_keys.derive(AUDIT_KEY_PURPOSE))(
        Alert("forgery-spike", 101, 600, ("203.0.113.7",))
    )
    return registry, trace


@pytest.fixture
async def world(
    demo_template: Path, tmp_path: Path, credentials: dict[str, Any], gnupghome: Path
) -> AsyncIterator[World]:
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    made = json.loads((data / "demo" / "administrator.json").read_text(encoding="utf-8"))
    assert made["address"] == ADMIN
    policy = (data / "policies.yaml").read_text(encoding="utf-8")
    async with running(data, credentials, admin_app=admin_app_for) as live:
        registry, trace = await _letter(live, gnupghome)
        base = f"https://127.0.0.1:{live.gateway.admin_port}"
        yield World(live, base, registry, trace, made["totp_secret"], policy)


async def _sign_in(flow: Flow, world: World) -> None:
    await flow.go(f"/admin/sign-in?lang={flow.lang}")
    await flow.shot("sign-in")
    await flow.page.get_by_label(flow.w("signin.address")).fill(ADMIN)
    await flow.page.get_by_label(flow.w("signin.password")).fill(
        world.live.credentials[ADMIN]["password"]
    )
    await flow.page.locator("#code").fill(pyotp.TOTP(world.totp).now())
    await flow.click("signin.submit")
    await flow.page.wait_for_url("**/admin/dashboard")
    await flow.shot("dashboard")


async def _agency_and_employee(flow: Flow, address: str) -> str:
    """Add MOF-WEB below MOF, an employee in it; the employee page's path."""
    await flow.go("/admin/directory")
    await flow.shot("directory")
    await flow.go("/admin/directory/agencies/MOF")
    form = flow.page.locator("#add-child")
    await form.get_by_label(flow.w("dir.code")).fill("MOF-WEB")
    await form.get_by_label(flow.w("dir.name_en")).fill("Web office")
    await form.get_by_label(flow.w("dir.name_ar")).fill("مكتب الويب")
    await form.get_by_label(flow.w("dir.kind")).select_option("directorate")
    await form.get_by_label(flow.w("dir.domain")).fill("web.mof.gov.example")
    await flow.click("dir.add_child", form)
    await flow.page.wait_for_url("**/admin/directory/agencies/MOF-WEB?done=agency-added")
    await flow.shot("agency-added")
    form = flow.page.locator("#add-employee")
    await form.get_by_label(flow.w("dir.address")).fill(address)
    await form.get_by_label(flow.w("dir.name_en")).fill("Web Clerk")
    await form.get_by_label(flow.w("dir.name_ar")).fill("كاتب الويب")
    await flow.click("dir.add_employee", form)
    await flow.page.wait_for_url(f"**/admin/directory/employees/{address}?done=employee-added")
    await flow.shot("employee-added")
    return f"/admin/directory/employees/{address}"


async def _upload_certificate(flow: Flow, folder: Path, address: str) -> None:
    pem, fingerprint = person_cert(address)
    certificate = folder / "clerk.pem"
    certificate.write_bytes(pem)
    form = flow.page.locator("#register")
    await form.locator("#p-material-file").set_input_files(str(certificate))
    await flow.click("dir.register", form)
    await flow.page.wait_for_url("**?done=identity-registered")
    assert fingerprint in await flow.page.locator("main").inner_text()
    await flow.shot("employee-certificate")


async def _import(flow: Flow, folder: Path) -> None:
    await flow.go("/admin/directory/import")
    bad = folder / "bad.csv"
    bad.write_text(BAD_CSV, encoding="utf-8")
    await flow.page.locator("#csv-file").set_input_files(str(bad))
    await flow.click("dir.import.start")
    assert await flow.page.locator("#problems li").count() == 1
    assert "castle" in await flow.page.locator("#problems").inner_text()
    await flow.shot("import-bad")
    await flow.go("/admin/directory/agencies/MOF")
    assert await flow.page.get_by_text("MOF-OK").count() == 0  # nothing imported
    await flow.go("/admin/directory/import")
    await flow.page.locator("#csv").fill(GOOD_CSV)
    await flow.click("dir.import.start")
    await flow.page.wait_for_url("**/admin/directory/import/*")
    await flow.page.get_by_text(flow.w("dir.import.state.done")).wait_for(timeout=20_000)
    progress = flow.page.locator("progress")
    assert await progress.get_attribute("value") == await progress.get_attribute("max") == "2"
    await flow.shot("import-done")


async def _policy(flow: Flow, world: World) -> None:
    await flow.go("/admin/policy")
    running = await flow.page.locator("#running").inner_text()
    text = flow.page.get_by_label(flow.w("policy.text"))
    broken = world.policy + AUDIT_RULE.replace("effect: deny", "effect: maybe")
    await text.fill(broken)
    await flow.click("policy.apply")
    line = broken.splitlines().index("    effect: maybe") + 1
    rows = flow.page.locator(".problems-table tbody tr")
    assert await rows.count() >= 1
    assert str(line) in await rows.locator("td.num").all_inner_texts(), line
    assert await flow.page.get_by_text(flow.w("policy.apply_refused")).count() == 1
    assert await flow.page.locator("#running").inner_text() == running  # not applied
    await flow.shot("policy-refused")
    await text.fill(world.policy + AUDIT_RULE)
    await flow.click("policy.apply")
    await flow.page.wait_for_url("**/admin/policy/versions/*?m=applied")
    await flow.shot("policy-applied")
    await flow.go(f"/admin/security/audit?kind=policy.apply&actor={ADMIN}")
    events = flow.page.locator("#events tbody tr")
    assert await events.count() == 1
    assert ADMIN in await events.inner_text()
    await flow.shot("audit-policy-apply")


async def _explain(flow: Flow) -> None:
    await flow.go("/admin/policy/explain")
    await flow.page.get_by_label(flow.w("policy.sender")).fill(SENDER)
    await flow.page.get_by_label(flow.w("policy.recipient")).fill(RECIPIENT)
    await flow.page.get_by_label(flow.w("policy.classification")).select_option("internal")
    await flow.click("policy.explain_submit")
    trace = await flow.page.locator("#trace").inner_text()
    assert "ministries-to-ministries" in trace, trace
    await flow.shot("explain")


async def _find_and_revoke(flow: Flow, world: World) -> None:
    await flow.go("/admin/messages")
    await flow.shot("messages")
    form = flow.page.locator("#by-code")
    await form.get_by_label(flow.w("msg.code")).fill(world.trace.lower())
    await flow.click("msg.find", form)
    found = flow.page.locator("#trace-result")
    assert RECIPIENT in await found.inner_text()
    await flow.shot("found-by-trace-code")
    await found.get_by_role("link", name=world.registry).click()
    await flow.page.wait_for_url(f"**/admin/messages/{world.registry}")
    await flow.go("/admin/messages")
    form = flow.page.locator("#by-registry")
    await form.get_by_label(flow.w("msg.registry")).fill(world.registry.lower())
    await flow.click("msg.show", form)
    await flow.page.wait_for_url(f"**/admin/messages/{world.registry}")
    assert world.trace in await flow.page.locator("#copies").inner_text()
    await flow.shot("message")
    await flow.page.get_by_label(flow.w("msg.reason")).fill(REASON[flow.lang])
    await flow.click("msg.revoke_next")
    await flow.shot("revoke-confirm")
    await flow.click("msg.confirm")
    await flow.page.wait_for_url("**?m=revoked")
    assert REASON[flow.lang] in await flow.page.locator("main").inner_text()
    await flow.shot("revoked")


async def _trails(flow: Flow, world: World) -> None:
    await flow.go("/admin/security/audit")
    assert await flow.page.locator("#chain .ok").count() == 1
    await flow.page.get_by_label(flow.w("sec.kind")).fill("message.revoke")
    await flow.click("sec.apply")
    assert world.registry in await flow.page.locator("#events").inner_text()
    await flow.shot("audit-revoke")
    await flow.go(f"/admin/security/access?registry={world.registry}")
    assert RECIPIENT in await flow.page.locator("#accesses").inner_text()
    await flow.shot("access")
    async with flow.page.expect_download() as waiting:
        await flow.page.get_by_role("link", name=flow.w("sec.export")).click()
    saved = Path(await (await waiting.value).path()).read_text("utf-8")
    assert saved.startswith("at,employee,registry") and RECIPIENT in saved
    assert world.registry in saved


@pytest.mark.parametrize(("lang", "width"), [("ar", 390), ("en", 1280)])
async def test_the_whole_flow_in_chromium(
    world: World, lang: str, width: int, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    out = screenshot_dir(tmp_path_factory.getbasetemp())
    async with open_browser(self_signed=True) as (context, console):
        axe = axe_available()
        if axe:
            await install_axe(context)
        page = await context.new_page()
        await page.set_viewport_size({"width": width, "height": 900})
        flow = Flow(page, lang, width, world.base, out, console, axe)
        await _sign_in(flow, world)
        address = f"web.clerk.{lang}@web.mof.gov.example"
        await _agency_and_employee(flow, address)
        await _upload_certificate(flow, tmp_path, address)
        await _import(flow, tmp_path)
        await _policy(flow, world)
        await _explain(flow)
        await _find_and_revoke(flow, world)
        await _trails(flow, world)
        shots = Shots(page, out, console)
        if lang == "en":  # the radar page in both languages at both widths, once
            await shots.all("security-radar", f"{world.base}/admin/security/radar")
            assert "203.0.113.7" in await page.locator("#radar-clients").inner_text()
    print("screenshots:", *flow.shots, *shots.taken, sep="\n  ")
