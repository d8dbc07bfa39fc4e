"""Alerts filed into the agency's security mailbox, on a real database and the
real mailbox store: a rule alert about a MOH employee lands once in MOH's
security mailbox INBOX, in Arabic and English, with `Barid-Alert: <id>`; a
rescan files nothing again; the filed bytes carry the gateway's DKIM signatures
and verify with dkimpy against the published keys; a restart files nothing again
and what was raised while stopped exactly once; a long backlog is filed batch
after batch with progress lines; an alert with no mailbox configured files
nothing and says so in the log; a store failure is counted and retried at the
next scan."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
from collections.abc import AsyncIterator, Callable

import dkim
import pytest
from sqlalchemy import select

from gateway import metrics
from gateway.alerts import kinds
from gateway.alerts import mailer as mailer_module
from gateway.alerts.evaluator import AlertEvaluator
from gateway.alerts.mailer import AlertMailer
from gateway.alerts.progress import Progress
from gateway.alerts.rules import ACCESS_ACTION
from gateway.config import AlertsSettings
from gateway.imap.mailbox import describe_off_loop
from gateway.stamping.dkim import DkimSigner
from gateway.store import audit
from gateway.store.access_trail import stored_time
from gateway.store.db import transaction
from gateway.store.models import MailboxMessage
from keys.dkim_dns import dkim_records
from keys.gateway_keys import GatewayKeys, default_keys_dir, ensure_gateway_keys, load_gateway_keys
from testkit.mailbox import ALICE, AUDIT_KEY, BOB, MailEnv, inbox, mail_env

NOW = dt.datetime(2026, 11, 17, 9, 0, tzinfo=dt.UTC)  # a Tuesday, 12:00 in Riyadh
DOMAIN = "moh.gov.example"
PREFIX = "barid"


def mails(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value("barid_alert_mails_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[MailEnv]:
    async with mail_env(db_url) as made:
        yield made


@pytest.fixture(scope="module")
def gateway_keys(tmp_path_factory: pytest.TempPathFactory) -> GatewayKeys:
    directory = default_keys_dir(tmp_path_factory.mktemp("alertkeys"))
    ensure_gateway_keys(directory)
    return load_gateway_keys(directory)


def evaluator(
    env: MailEnv, signer_for: Callable[[str], DkimSigner | None] | None = None, **settings: object
) -> AlertEvaluator:
    config = AlertsSettings.model_validate({"volume_min_bodies": 3, **settings})
    mailer = AlertMailer(
        config, env.sessions, env.store, env.cipher, describe=describe_off_loop,
        hostname="mail.moh.gov.example", admin_url="https://admin.moh.gov.example",
        signer_for=signer_for,
    )  # fmt: skip
    return AlertEvaluator(config, env.sessions, AUDIT_KEY, mailer=mailer)


async def lockout(env: MailEnv, account: str) -> None:
    """A login lockout alert about `account`, as the login throttle records it."""
    async with transaction(env.sessions) as session:
        await audit.append(
            session, AUDIT_KEY, actor="login-throttle", action=kinds.LOCKOUT_ACTION,
            target=account, outcome="lockout", details={"kind": "account", "failures": 12},
        )  # fmt: skip


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


async def inbox_bytes(env: MailEnv, employee: int) -> list[bytes]:
    box = await inbox(env, employee)
    async with env.sessions() as session:
        contents = (
            await session.scalars(
                select(MailboxMessage.content_id)
                .where(MailboxMessage.mailbox_id == box)
                .order_by(MailboxMessage.uid)
            )
        ).all()
    return [await env.store.load_bytes(content) for content in contents]


async def inbox_mails(env: MailEnv, employee: int) -> list[email.message.EmailMessage]:
    found = []
    for raw in await inbox_bytes(env, employee):
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


async def test_the_filed_message_is_dkim_signed_with_the_gateway_key(
    env: MailEnv, gateway_keys: GatewayKeys
) -> None:
    signer = DkimSigner(gateway_keys, DOMAIN, PREFIX)
    rules = evaluator(env, lambda domain: signer if domain == DOMAIN else None,
                      security_mailboxes=f"MOH={BOB}")  # fmt: skip
    await lockout(env, ALICE)
    await rules.scan(now=NOW)
    [raw] = await inbox_bytes(env, env.bob)
    records = {f"{r.name}.".encode(): r.value.encode()
               for r in dkim_records(gateway_keys, PREFIX, DOMAIN)}  # fmt: skip

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    assert raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    verdicts = [dkim.DKIM(raw).verify(idx=i, dnsfunc=lookup) for i in range(2)]
    assert verdicts == [True, True]
    header = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert "barid-alert" in header and f"d={DOMAIN}" in header
    # The signature covers the alert's id: a changed Barid-Alert header fails.
    forged = raw.replace(b"Barid-Alert: ", b"Barid-Alert: 9", 1)
    assert not dkim.DKIM(forged).verify(idx=0, dnsfunc=lookup)


async def test_a_restart_files_nothing_again_and_what_came_meanwhile_once(
    env: MailEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = evaluator(env, security_mailboxes=f"MOH={BOB}")
    await reads(env, ALICE, 8, monkeypatch)
    assert len((await first.scan(now=NOW)).raised) == 1
    assert len(await inbox_mails(env, env.bob)) == 1
    # The gateway stops; meanwhile the login throttle and the readers go on.
    await lockout(env, ALICE)
    await reads(env, BOB, 8, monkeypatch)
    restarted = evaluator(env, security_mailboxes=f"MOH={BOB}")
    result = await restarted.scan(now=NOW)
    assert [(r.fired.kind, r.fired.subject) for r in result.raised] == [
        (kinds.AlertKind.BODY_VOLUME, BOB)
    ]
    assert result.filed == 2
    for _ in range(2):  # and once more, after another restart
        await evaluator(env, security_mailboxes=f"MOH={BOB}").scan(now=NOW)
    found = await inbox_mails(env, env.bob)
    assert [m["Barid-Alert-Kind"] for m in found] == ["body-volume", "login-lockout",
                                                      "body-volume"]  # fmt: skip
    assert len({m["Barid-Alert"] for m in found}) == 3


async def test_a_backlog_is_filed_batch_after_batch_with_progress(
    env: MailEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mailer_module, "BATCH", 4)
    for _ in range(6):
        await lockout(env, ALICE)
    rules = evaluator(env, security_mailboxes=f"MOH={BOB}")
    lines: list[str] = []
    result = await rules.scan(now=NOW, drain=True, progress=Progress(lines.append, every=0))
    assert result.filed == 6 and len(await inbox_mails(env, env.bob)) == 6
    assert lines == ["alert rules: 0 events read, evaluating",  # the lockouts are no reads
                     "alert messages: 4 of 6 dealt with, 4 filed",
                     "alert messages: 6 of 6 dealt with, 6 filed"]  # fmt: skip
    # Without drain (the running gateway's periodic scan) one batch per scan.
    for _ in range(6):
        await lockout(env, ALICE)
    assert (await rules.scan(now=NOW)).filed == 4
    assert (await rules.scan(now=NOW)).filed == 2


def test_progress_lines_only_for_long_runs() -> None:
    clock = iter([0.0, 0.5, 2.5, 3.0, 5.0])
    lines: list[str] = []
    progress = Progress(lines.append, every=2.0, clock=lambda: next(clock))
    for text in ("a", "b", "c", "d"):
        progress.note(text)
    assert lines == ["b", "d"]
