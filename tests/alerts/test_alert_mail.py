"""Alerts filed into the agency's security mailbox, on a real database and the
real mailbox store: a rule alert about a MOH employee lands once in MOH's
security mailbox INBOX, in Arabic and English, with `Barid-Alert: <id>`; a
rescan files nothing again; an alert with no mailbox configured files nothing
and says so in the log; a store failure is counted and retried at the next scan."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from gateway import metrics
from gateway.alerts import kinds
from gateway.alerts.evaluator import AlertEvaluator
from gateway.alerts.mailer import AlertMailer
from gateway.alerts.rules import ACCESS_ACTION
from gateway.config import AlertsSettings
from gateway.imap.mailbox import describe_off_loop
from gateway.store import audit
from gateway.store.access_trail import stored_time
from gateway.store.db import transaction
from gateway.store.models import MailboxMessage
from testkit.mailbox import ALICE, AUDIT_KEY, BOB, MailEnv, inbox, mail_env

NOW = dt.datetime(2026, 11, 17, 9, 0, tzinfo=dt.UTC)  # a Tuesday, 12:00 in Riyadh


def mails(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value("barid_alert_mails_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[MailEnv]:
    async with mail_env(db_url) as made:
        yield made


def evaluator(env: MailEnv, **settings: object) -> AlertEvaluator:
    config = AlertsSettings.model_validate({"volume_min_bodies": 3, **settings})
    mailer = AlertMailer(
        config, env.sessions, env.store, env.cipher, describe=describe_off_loop,
        hostname="mail.moh.gov.example", admin_url="https://admin.moh.gov.example",
    )  # fmt: skip
    return AlertEvaluator(config, env.sessions, AUDIT_KEY, mailer=mailer)


async def reads(env: MailEnv, who: str, n: int, mp: pytest.MonkeyPatch) -> None:
    times = [stored_time(NOW + dt.timedelta(seconds=i)) for i in range(n)]
    mp.setattr(audit, "utcnow", lambda: times.pop(0))
    events = [
        audit.Event(actor=who, action=ACCESS_ACTION, target=f"MOH/2026/{i:06d}",
                    details={"client": "10.1.0.20", "protocol": "imaps", "trace": None})
        for i in range(n)
    ]  # fmt: skip
    async with transaction(env.sessions) as session:
        await audit.append_many(session, AUDIT_KEY, events)
    mp.undo()


async def inbox_mails(env: MailEnv, employee: int) -> list[email.message.EmailMessage]:
    box = await inbox(env, employee)
    async with env.sessions() as session:
        contents = (
            await session.scalars(
                select(MailboxMessage.content_id).where(MailboxMessage.mailbox_id == box)
            )
        ).all()
    found = []
    for content in contents:
        raw = await env.store.load_bytes(content)
        found.append(email.message_from_bytes(raw, policy=email.policy.default))
    return found  # type: ignore[return-value]


async def test_rule_alert_lands_once_in_the_agency_security_inbox(
    env: MailEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = evaluator(env, security_mailboxes=f"MOH={BOB}")
    await reads(env, ALICE, 8, monkeypatch)
    before = mails("filed")
    result = await rules.scan(now=NOW)
    assert [r.fired.kind for r in result.raised] == [kinds.AlertKind.BODY_VOLUME]
    alert_id = result.raised[0].event_id
    found = await inbox_mails(env, env.bob)
    assert len(found) == 1 and mails("filed") == before + 1
    message = found[0]
    assert message["Barid-Alert"] == str(alert_id)
    assert message["From"] == "Barid <noreply@moh.gov.example>" and message["To"] == BOB
    assert "Security alert" in message["Subject"] and "تنبيه أمني" in message["Subject"]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    arabic = text.index("فتح موظف في يوم واحد")
    english = text.index("An employee opened many more official bodies")
    assert arabic < english
    assert f"barid alerts ack {alert_id}" in text
    assert "https://admin.moh.gov.example/admin/security/alerts" in text
    assert ALICE in text and "count: 8" in text
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "An employee opened many more official bodies" in html
    # A rescan (new evaluator, as after a restart) files nothing again.
    await evaluator(env, security_mailboxes=f"MOH={BOB}").scan(now=NOW)
    await rules.scan(now=NOW)
    assert len(await inbox_mails(env, env.bob)) == 1
    assert await inbox_mails(env, env.alice) == []


async def test_an_alert_with_no_mailbox_files_nothing_and_says_so(
    env: MailEnv, caplog: pytest.LogCaptureFixture
) -> None:
    async with transaction(env.sessions) as session:
        await audit.append(
            session, AUDIT_KEY, actor="login-throttle", action=kinds.LOCKOUT_ACTION,
            target="10.9.9.9", outcome="lockout", details={"kind": "client", "failures": 20},
        )  # fmt: skip
    before = mails("unrouted")
    with caplog.at_level(logging.WARNING, logger="barid.alerts"):
        await evaluator(env, security_mailboxes=f"MOH={BOB}").scan(now=NOW)
    assert "no security mailbox configured" in caplog.text
    assert "10.9.9.9" not in caplog.text
    assert mails("unrouted") == before + 1
    assert await inbox_mails(env, env.bob) == [] and await inbox_mails(env, env.alice) == []


async def test_default_mailbox_takes_alerts_about_no_agency_and_failures_retry(
    env: MailEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with transaction(env.sessions) as session:
        await audit.append(
            session, AUDIT_KEY, actor="relay", action=kinds.TLS_ALERT_ACTION,
            target="region.gov.example", outcome="alert", details={"remote": "region"},
        )  # fmt: skip
    rules = evaluator(env, default_security_mailbox=ALICE)

    async def broken(raw: bytes) -> bytes:
        raise OSError("parse process gone")

    failed = mails("failed")
    monkeypatch.setattr(rules._mailer, "_describe", broken)
    await rules.scan(now=NOW)
    assert mails("failed") == failed + 1 and await inbox_mails(env, env.alice) == []
    monkeypatch.undo()
    await rules.scan(now=NOW)
    found = await inbox_mails(env, env.alice)
    assert len(found) == 1 and "peer-tls" in found[0]["Subject"]
