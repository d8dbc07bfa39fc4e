"""`barid alerts list|ack` from the real CLI, on SQLite and on PostgreSQL: alerts
written by the gateway's own sinks (the verification radar's, the login lockout
events') are listed and acknowledged once, as the local system administrator."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from admin.context import open_app
from gateway.config import load_settings
from gateway.intake.lockout_events import LockoutEvents, audit_lockouts
from gateway.intake.smtp.throttle import Lockout
from gateway.store import audit
from gateway.store.db import transaction
from gateway.verification.radar import Alert, audit_alerts
from testkit.cli import ok, refused

ACCOUNT = "clerk@moh.gov.xx"
REGISTRY = "MOH/2026/000042"


def fails(result: Any, code: int, *words: str) -> str:
    return refused(result, *words, code=code)


def raise_alerts(cli: Any) -> tuple[int, int]:
    """A document spike and a lockout, through the gateway's sinks; their event ids."""

    async def go() -> tuple[int, int]:
        settings = load_settings(None, environ=cli.env)
        async with open_app(settings) as app:
            spike = Alert("document-spike", 250, 600, ("198.51.100.1", "198.51.100.2"), REGISTRY)
            await audit_alerts(app.sessions, app.audit_key)(spike)
            async with app.sessions() as session:
                spike_id = await audit.chain_length(session)
            events = LockoutEvents(audit_lockouts(app.sessions, app.audit_key))
            events.report([Lockout("account-slowdown", ACCOUNT, "", 12)], "submission")
            await events.drain()
            async with app.sessions() as session:
                return spike_id, await audit.chain_length(session)

    return asyncio.run(go())


def test_list_and_acknowledge(barid_any: Any) -> None:
    cli = barid_any
    assert ok(cli("alerts", "list")).strip() == "no alerts"
    spike, lockout = raise_alerts(cli)
    lines = ok(cli("alerts", "list")).rstrip("\n").split("\n")
    assert len(lines) == 2
    assert re.fullmatch(
        rf"{lockout}  \S+Z  login-lockout  {re.escape(ACCOUNT)}  kind=account-slowdown"
        r" failures=12 protocol=submission  open",
        lines[0],
    ), lines[0]
    assert lines[1].startswith(f"{spike}  ") and "verification-spike  " + REGISTRY in lines[1]
    assert "clients=198.51.100.1,198.51.100.2" in lines[1]
    listed = ok(cli("alerts", "list", "--kind", "verification-spike", "--json"))
    assert [a["id"] for a in listed] == [spike] and listed[0]["facts"]["count"] == 250
    assert listed[0]["acknowledgement"] is None

    events = ok(cli("audit", "verify", "--json"))["events"]
    acked = ok(cli("alerts", "ack", str(spike), "--note", "a scraper; blocked", "--json"))
    assert acked["alert_id"] == spike and acked["by"].startswith("cli:")
    assert acked["role"] == "system-admin" and acked["note"] == "a scraper; blocked"
    again = ok(cli("alerts", "ack", str(spike)))
    assert again.strip() == f"alert {spike} acknowledged by {acked['by']} at {acked['at']}: " \
                            "a scraper; blocked"  # fmt: skip
    assert ok(cli("audit", "verify", "--json"))["events"] == events + 1
    log = ok(cli("audit", "log", "--action", "alert.ack", "--json"))
    assert [(e["target"], e["details"]["note"]) for e in log] == [
        (str(spike), "a scraper; blocked")
    ]

    still_open = ok(cli("alerts", "list", "--open", "--json"))
    assert [a["id"] for a in still_open] == [lockout]
    shown = ok(cli("alerts", "list", "--limit", "1", "--since", "1h", "--json"))
    assert [a["id"] for a in shown] == [lockout]
    assert ok(cli("alerts", "list", "--until", "2000-01-01", "--json")) == []


def test_refusals_are_one_line_and_change_nothing(barid_any: Any) -> None:
    cli = barid_any
    spike, lockout = raise_alerts(cli)
    ack = ok(cli("alerts", "ack", str(lockout), "--json"))["event_id"]
    events = ok(cli("audit", "verify", "--json"))["events"]
    fails(cli("alerts", "ack", "999999"), 1, "no alert 999999")
    fails(cli("alerts", "ack", str(ack + 1)), 1, "no alert")  # no such event yet
    fails(cli("alerts", "ack", str(ack)), 1, f"no alert {ack}")  # an event, but not an alert
    fails(cli("alerts", "ack", str(spike), "--note", "x" * 501), 1, "note")
    fails(cli("alerts", "ack", "0"), 2)
    fails(cli("alerts", "list", "--kind", "volcano"), 2, "volcano")
    fails(cli("alerts", "list", "--since", "whenever"), 1, "since")
    error = cli("alerts", "ack", "999999", "--json")
    assert error.code == 1 and json.loads(error.out)["ok"] is False
    assert ok(cli("audit", "verify", "--json"))["events"] == events


def deny(cli: Any, sender: str, n: int) -> None:
    """`n` submissions of `sender` refused by policy, as the gateway records them."""

    async def go() -> None:
        settings = load_settings(None, environ=cli.env)
        async with open_app(settings) as app, transaction(app.sessions) as session:
            for _ in range(n):
                await audit.append(session, app.audit_key, actor="submission",
                                   action="message.reject", target=sender, outcome="refused",
                                   details={"reason": "policy", "rule": "no-secret-out"})  # fmt: skip

    asyncio.run(go())


def test_scan_raises_each_alert_once(barid_any: Any) -> None:
    cli = barid_any
    deny(cli, "clerk@moh.gov.xx", 9)
    assert ok(cli("alerts", "scan")).strip().endswith("0 alerts raised")
    deny(cli, "clerk@moh.gov.xx", 1)
    lines = ok(cli("alerts", "scan")).rstrip("\n").split("\n")
    assert len(lines) == 2 and lines[1].endswith("10 events read, 1 alerts raised")
    assert re.match(r"\d+  \S+  policy-denials  clerk@moh\.gov\.xx  window=\S+ count=10 ", lines[0])
    report = ok(cli("alerts", "scan", "--since", "1h", "--json"))
    assert report["raised"] == [] and report["fired"] == 1
    listed = ok(cli("alerts", "list", "--kind", "policy-denials", "--json"))
    assert [a["subject"] for a in listed] == ["clerk@moh.gov.xx"]
    assert listed[0]["facts"]["rules"] == ["no-secret-out"]
    fails(cli("alerts", "scan", "--since", "whenever"), 1, "since")
