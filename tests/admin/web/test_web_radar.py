"""The verification radar's figures (admin.services.radar_figures) and their page,
/admin/security/radar, over real HTTP: the radar's alerts, written by its own
audit sink, counted per day over 30 days, the addresses they named and the
documents looked up most; older alerts left out; gateway-wide, so a system
administrator and a security auditor read them and MOF's agency administrator
and registrar are refused (403, no link in the navigation)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.services import radar_figures
from admin.services.actor import Forbidden
from admin.web.catalogue import word
from gateway.verification.radar import Alert, audit_alerts
from testkit.admin_use_cases import ACTORS
from testkit.admin_web import AUDITOR, CLI, MOF_ADMIN, SYSTEM_ADMIN, WebWorld, web_world
from testkit.admin_web_roles import MOF_REGISTRAR, add_person, signed_in_as

RADAR = "/admin/security/radar"


@pytest.fixture
async def web(barid: object, tmp_path: Path) -> AsyncIterator[WebWorld]:
    async with web_world(tmp_path / "data") as world:
        app = world.served.world.app
        sink = audit_alerts(app.sessions, app.audit_key)
        # The world holds one forgery spike already (101 tokens, 203.0.113.7 and .8).
        await sink(Alert("forgery-spike", 150, 600, ("203.0.113.7", "198.51.100.9")))
        await sink(Alert("document-spike", 201, 600, ("198.51.100.9",),
                         world.served.world.tax_message))  # fmt: skip
        await add_person(world, MOF_REGISTRAR, "registrar", "MOF")
        yield world


async def test_figures_per_day_top_clients_and_documents(web: WebWorld) -> None:
    app = web.served.world.app
    figures = await radar_figures.radar_figures(CLI, app)
    assert len(figures.days) == radar_figures.DAYS and figures.alerts == 3
    today = figures.days[-1]
    assert today.day == dt.datetime.now(dt.UTC).date().isoformat() == figures.last_day
    assert (today.forgery_alerts, today.forged_lookups) == (2, 251)
    assert (today.document_alerts, today.document_lookups, today.clients) == (1, 201, 3)
    assert all(not d.forgery_alerts and not d.document_alerts for d in figures.days[:-1])
    named = [(c.address, c.alerts) for c in figures.clients]
    assert named == [("198.51.100.9", 2), ("203.0.113.7", 2), ("203.0.113.8", 1)]
    registry = web.served.world.tax_message
    assert [(r.registry, r.alerts, r.lookups) for r in figures.registries] == [(registry, 1, 201)]
    assert not figures.truncated
    # A month on, today's alerts have left the window; nine days on, they are day 21.
    later = await radar_figures.radar_figures(
        CLI, app, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    )
    assert later.alerts == 0 and not later.clients and not any(d.forged_lookups for d in later.days)
    nine = await radar_figures.radar_figures(
        CLI, app, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=9)
    )
    assert nine.days[-10].forged_lookups == 251 and nine.days[-1].forged_lookups == 0


async def test_only_unscoped_alert_readers_may_read_the_figures(web: WebWorld) -> None:
    app = web.served.world.app
    assert (await radar_figures.radar_figures(ACTORS["auditor"], app)).alerts == 3
    for role in ("agency-admin", "registrar"):
        with pytest.raises(Forbidden):
            await radar_figures.radar_figures(ACTORS[role], app)


async def test_radar_page_in_both_languages(web: WebWorld) -> None:
    for address in (SYSTEM_ADMIN, AUDITOR):
        async with signed_in_as(web, address) as client:
            for lang in ("ar", "en"):
                shown = await client.get(f"{RADAR}?lang={lang}")
                assert shown.status_code == 200, shown.text
                text = shown.text
                assert f'<html lang="{lang}"' in text
                assert " style=" not in text and "<script" not in text
                assert f'href="{RADAR}" aria-current="page"' in text
                assert word(lang, "sec.radar_top_clients") in text  # type: ignore[arg-type]
                assert len(re.findall(r'<rect [^>]*class="bar"', text)) == radar_figures.DAYS
                assert '<td class="num">251</td>' in text and "198.51.100.9" in text
                assert web.served.world.tax_message in text
            audit = await client.get("/admin/security/audit")
            assert f'href="{RADAR}"' in audit.text


async def test_scoped_roles_are_refused_and_not_shown_the_link(web: WebWorld) -> None:
    for address in (MOF_ADMIN, MOF_REGISTRAR):
        async with signed_in_as(web, address, "en") as client:
            refused = await client.get(RADAR)
            assert refused.status_code == 403, refused.text
            assert "198.51.100.9" not in refused.text and "203.0.113" not in refused.text
            assert word("en", "page.forbidden") in refused.text
            if address == MOF_ADMIN:
                audit = await client.get("/admin/security/audit")
                assert audit.status_code == 200 and RADAR not in audit.text
    async with signed_in_as(web, SYSTEM_ADMIN, "en") as client:
        client.cookies.clear()
        assert (await client.get(RADAR)).status_code == 303
