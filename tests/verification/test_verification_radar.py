"""The verification radar (gateway/verification/radar.py): per-client throttling of
failed lookups and of lookups per minute, bounded memory, one spike alert per
window; then over HTTP: 429 for one client only, metrics without tokens, one
audit alert for a forgery spike and an intact audit chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway import metrics
from gateway.http.app import build_app
from gateway.store import audit
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.models import AuditEvent
from gateway.verification import VerificationService
from gateway.verification.radar import (
    TOO_MANY,
    Alert,
    Radar,
    RadarLimits,
    audit_alerts,
)
from testkit.messages import PDF
from testkit.metrics import exposition as scrape
from testkit.verification import RETIRED_KEY, flip, send_letter, token_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lookups(kind: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "barid_verify_lookups_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


# ---------------------------------------------------------------- pure logic


async def test_more_than_30_failures_in_10_minutes_throttle_failing_lookups_only() -> None:
    clock = FakeClock()
    radar = Radar(clock=clock)
    for i in range(30):
        assert (
            await radar.observe("10.0.0.1", "token", "forged" if i % 2 else "unknown")
        ).retry_after is None
        clock.now += 1
    assert not (await radar.throttled("10.0.0.1"))
    refused = (await radar.observe("10.0.0.1", "document", "no-match")).retry_after
    assert refused == 600 - 30  # until the window opened by the first failure ends
    assert await radar.throttled("10.0.0.1")
    # Successful lookups are never refused by the failure rule; other clients are unaffected.
    assert (
        await radar.observe("10.0.0.1", "token", "valid", ["MOH-2026-000001"])
    ).retry_after is None
    assert (
        await radar.observe("10.0.0.1", "document", "match", ["MOH-2026-000001"])
    ).retry_after is None
    assert (await radar.observe("10.0.0.2", "token", "forged")).retry_after is None
    assert (await radar.check("10.0.0.1", "token")) is None  # the ceiling is far away
    clock.now += 570  # the window has ended
    assert not (await radar.throttled("10.0.0.1"))
    assert (await radar.observe("10.0.0.1", "token", "forged")).retry_after is None


async def test_failures_spread_over_windows_are_not_throttled() -> None:
    clock = FakeClock()
    radar = Radar(clock=clock)
    for _ in range(300):
        assert (await radar.observe("10.0.0.1", "token", "forged")).retry_after is None
        clock.now += 21  # 30 failures take 609 s: never more than 30 in one window


async def test_per_minute_ceiling_counts_every_lookup_per_address() -> None:
    clock = FakeClock()
    radar = Radar(RadarLimits(per_minute=5), clock=clock)
    before = lookups("token", "throttled")
    for _ in range(5):
        assert (await radar.check("10.0.0.1", "token")) is None
    clock.now += 20
    assert (await radar.check("10.0.0.1", "token")) == 40
    assert (await radar.check("10.0.0.2", "document")) is None
    assert lookups("token", "throttled") == before + 1
    clock.now += 40
    assert (await radar.check("10.0.0.1", "token")) is None


async def test_memory_is_bounded_by_evicting_the_least_recently_seen() -> None:
    clock = FakeClock()
    radar = Radar(RadarLimits(failures=2, max_keys=3), clock=clock)
    for _ in range(3):
        await radar.observe("a", "token", "forged")
    assert await radar.throttled("a")
    for name in ["b", "c"]:
        await radar.observe(name, "token", "forged", [f"R-{name}"])
    await radar.check("a", "token")  # a lookup: "a" is the most recent again
    await radar.observe("d", "token", "forged", ["R-d", "R-e"])
    assert radar.tracked == (3, 3)
    assert await radar.throttled("a")  # kept; "b" was evicted
    for i in range(1000):
        await radar.check(f"10.1.{i // 256}.{i % 256}", "token")
    assert radar.tracked == (3, 3)
    assert not (await radar.throttled("a"))


def test_default_limits() -> None:
    limits = RadarLimits()
    assert (limits.failures, limits.failure_window, limits.per_minute) == (30, 600.0, 600)
    assert (limits.registry_spike, limits.forgery_spike, limits.spike_window) == (200, 100, 600.0)
    assert limits.max_keys == 100_000


async def test_one_document_spike_alert_per_window_and_registry() -> None:
    clock = FakeClock()
    radar = Radar(RadarLimits(registry_spike=3), clock=clock)
    alerts: list[Alert] = []
    for i in range(20):
        observed = await radar.observe(f"10.0.0.{i}", "document", "match", ["MOH-2026-000001"])
        alerts += observed.alerts
        clock.now += 1
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == "document-spike" and alert.registry == "MOH-2026-000001"
    assert alert.count == 4
    details = alert.details()
    assert details["registry"] == "MOH-2026-000001" and details["window_seconds"] == 600
    assert details["clients"] == [f"10.0.0.{i}" for i in range(4)]
    # Another registry number has its own window; the first one alerts again in a new window.
    for _ in range(4):
        alerts += (await radar.observe("x", "token", "valid", ["MOF-2026-000002"])).alerts
    assert [a.registry for a in alerts] == ["MOH-2026-000001", "MOF-2026-000002"]
    clock.now += 600
    for _ in range(4):
        alerts += (await radar.observe("x", "document", "match", ["MOH-2026-000001"])).alerts
    assert len(alerts) == 3


async def test_one_forgery_spike_alert_per_window_with_at_most_ten_clients() -> None:
    clock = FakeClock()
    radar = Radar(RadarLimits(forgery_spike=100), clock=clock)
    alerts: list[Alert] = []
    for i in range(500):
        alerts += (await radar.observe(f"10.0.{i % 50}.1", "token", "forged")).alerts
    assert len(alerts) == 1
    details = alerts[0].details()
    assert details["kind"] == "forgery-spike" and details["count"] == 101
    assert "registry" not in details
    assert len(details["clients"]) == 10
    assert not any(a.alerts for a in [(await radar.observe("y", "token", "unknown", ["R"]))])
    clock.now += 600
    for _ in range(101):
        alerts += (await radar.observe("z", "token", "forged")).alerts
    assert len(alerts) == 2 and alerts[1].clients == ("z",)


async def test_record_sends_each_alert_once_and_survives_a_failing_sink() -> None:
    sent: list[Alert] = []

    async def sink(alert: Alert) -> None:
        sent.append(alert)

    radar = Radar(RadarLimits(forgery_spike=2), clock=FakeClock(), alerts=sink)
    for _ in range(5):
        assert await radar.record("a", "token", "forged") is None
    assert [a.kind for a in sent] == ["forgery-spike"]

    async def broken(_alert: Alert) -> None:
        raise OSError("disk full")

    radar = Radar(RadarLimits(forgery_spike=0, failures=0), clock=FakeClock(), alerts=broken)
    assert await radar.record("a", "token", "forged") == 600


async def test_metrics_count_outcomes_by_kind() -> None:
    radar = Radar(RadarLimits(failures=1), clock=FakeClock())
    before = {o: lookups("document", o) for o in ["match", "no-match", "throttled"]}
    await radar.observe("m", "document", "match", ["R"])
    await radar.observe("m", "document", "no-match")
    await radar.observe("m", "document", "no-match")  # the second failure: refused
    assert lookups("document", "match") == before["match"] + 1
    assert lookups("document", "no-match") == before["no-match"] + 1
    assert lookups("document", "throttled") == before["throttled"] + 1


# ---------------------------------------------------------------- over HTTP


@pytest.fixture
async def radar_app(live: Any) -> AsyncIterator[tuple[Any, Radar]]:
    key = live.gateway_keys.derive(AUDIT_KEY_PURPOSE)
    radar = Radar(RadarLimits(forgery_spike=40), alerts=audit_alerts(live.gateway.sessions, key))
    service = VerificationService(
        live.gateway.sessions,
        live.gateway_keys.verification_keys,
        current_key_id=live.gateway_keys.signing_key_id,
    )
    yield build_app(live.gateway.engine, verification=service, radar=radar), radar


def http_client(app: Any, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://barid.test")


async def test_forged_lookups_throttle_one_client_and_alert_once(
    live: Any, gnupghome: Path, radar_app: tuple[Any, Radar]
) -> None:
    app, radar = radar_app
    assert app.state.verify_radar is radar
    registry = await send_letter(live, gnupghome, PDF, "letter.pdf")
    message = await live.gateway.store.message_by_registry(registry)
    valid = str(message.token)
    forged = flip(token_for(RETIRED_KEY), 10)
    key = live.gateway_keys.derive(AUDIT_KEY_PURPOSE)
    async with live.gateway.sessions() as session:
        alerts_before = len(
            (
                await session.scalars(select(AuditEvent).where(AuditEvent.action == "verify.alert"))
            ).all()
        )

    async with (
        http_client(app, "198.51.100.7") as attacker,
        http_client(app, "203.0.113.9") as other,
    ):
        for _ in range(30):
            response = await attacker.get(f"/api/v1/verify/{forged}")
            assert response.status_code == 200 and response.json()["status"] == "forged"
        refused = await attacker.get(f"/api/v1/verify/{forged}")
        assert refused.status_code == 429
        assert refused.json() == {"error": TOO_MANY}
        assert 0 < int(refused.headers["retry-after"]) <= 600
        assert refused.headers["cache-control"] == "no-store"
        bad_document = await attacker.post("/api/v1/verify/document", content=b"not ours")
        assert bad_document.status_code == 429
        # The public page shares the radar: the same client gets the page's 429.
        page = await attacker.get(f"/v/{forged}?lang=en")
        assert page.status_code == 429 and "Too many failed lookups" in page.text
        assert 0 < int(page.headers["retry-after"]) <= 600
        # A valid lookup from the throttled client is still answered; the other client is unaffected.
        answered = await attacker.get(f"/api/v1/verify/{valid}")
        assert answered.status_code == 200 and answered.json()["status"] == "valid"
        for _ in range(15):  # 31 + 15 forged lookups: over the spike threshold of 40, once
            response = await other.get(f"/api/v1/verify/{forged}")
            assert response.status_code == 200 and response.json()["status"] == "forged"
        document = await other.post("/api/v1/verify/document", content=PDF)
        assert document.status_code == 200 and document.json()["status"] == "match"

        exposition = scrape()
    assert 'barid_verify_lookups_total{kind="token",outcome="forged"}' in exposition
    assert 'barid_verify_lookups_total{kind="token",outcome="throttled"}' in exposition
    assert 'barid_verify_lookups_total{kind="token",outcome="valid"}' in exposition
    assert 'barid_verify_lookups_total{kind="document",outcome="match"}' in exposition
    assert forged not in exposition and valid not in exposition
    assert forged.lower() not in exposition.lower() and "198.51.100.7" not in exposition

    async with live.gateway.sessions() as session:
        events = (
            await session.scalars(select(AuditEvent).where(AuditEvent.action == "verify.alert"))
        ).all()
        assert len(events) == alerts_before + 1
        event = events[-1]
        assert event.outcome == "alert" and event.actor == "verify-radar"
        details = json.loads(event.details)
        assert details["kind"] == "forgery-spike" and details["count"] == 41
        assert set(details["clients"]) == {"198.51.100.7", "203.0.113.9"}
        assert forged not in event.details and valid not in event.details
        report = await audit.verify(session, key)
    assert report.ok, report.problems


async def test_the_served_gateway_has_a_radar_with_the_configured_ceiling(live: Any) -> None:
    assert live.gateway.settings.http.verify_lookups_per_minute == 600
    assert live.gateway.settings.http.verify_failures_per_10_minutes == 1_000_000  # live fixture
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{live.gateway.http_port}", timeout=30
    ) as http:
        response = await http.get(f"/api/v1/verify/{flip(token_for(RETIRED_KEY), 10)}")
        assert response.status_code == 200 and response.json()["status"] == "forged"
