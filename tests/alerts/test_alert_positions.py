"""The alert positions on a real database: migration 0014 starts the rules and the
mailer at the end of an upgraded installation's trail (its history is neither
evaluated nor filed; `--since` still evaluates it); a missing position row is made
at the current end; and a restarted evaluator does not judge old days on a
history cut short (it raised spurious body-volume alerts when its position lived
in memory)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.alerts import kinds
from gateway.alerts.evaluator import AlertEvaluator
from gateway.alerts.mailer import AlertMailer
from gateway.alerts.rules import ACCESS_ACTION
from gateway.config import AlertsSettings
from gateway.imap.mailbox import describe_off_loop
from gateway.store import alert_positions, audit, migrate
from gateway.store.access_trail import stored_time
from gateway.store.blobs import BlobCipher
from gateway.store.db import create_engine, session_factory, transaction
from gateway.store.mailbox.notify import MailboxNotifier
from gateway.store.mailbox.store import MailboxStore
from gateway.store.models import Meta
from testkit.mailbox import ALICE, AUDIT_KEY, BOB, seed_employees

NOW = dt.datetime(2026, 11, 17, 9, 0, tzinfo=dt.UTC)  # a Tuesday, 12:00 in Riyadh


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(db_url)
    try:
        yield made
    finally:
        await made.dispose()


async def reads(engine: AsyncEngine, who: str, at: dt.datetime, n: int) -> None:
    """`n` distinct bodies read by `who`, a second apart from `at`."""
    events = [
        audit.Event(actor=who, action=ACCESS_ACTION, target=f"MOH/2026/{i:06d}",
                    details={"client": "10.1.0.20", "protocol": "imaps", "trace": None})
        for i in range(n)
    ]  # fmt: skip
    times = iter(stored_time(at + dt.timedelta(seconds=i)) for i in range(n))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(audit, "utcnow", lambda: next(times))
        async with transaction(session_factory(engine)) as session:
            await audit.append_many(session, AUDIT_KEY, events)


async def lockout(engine: AsyncEngine, account: str) -> None:
    async with transaction(session_factory(engine)) as session:
        await audit.append(
            session, AUDIT_KEY, actor="login-throttle", action=kinds.LOCKOUT_ACTION,
            target=account, outcome="lockout", details={"kind": "account", "failures": 12},
        )  # fmt: skip


def rules_and_mailer(engine: AsyncEngine, **settings: object) -> AlertEvaluator:
    sessions = session_factory(engine)
    config = AlertsSettings.model_validate(settings)
    cipher = BlobCipher(os.urandom(32))
    mailer = AlertMailer(
        config, sessions, MailboxStore(sessions, cipher, MailboxNotifier()), cipher,
        describe=describe_off_loop, hostname="mail.moh.gov.example",
    )  # fmt: skip
    return AlertEvaluator(config, sessions, AUDIT_KEY, mailer=mailer)


async def test_an_upgrade_starts_after_the_history(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine, "0013")  # the revision before 0014
    await reads(engine, ALICE, NOW, 8)  # a body-volume day, before the upgrade
    await lockout(engine, ALICE)  # an alert recorded before the upgrade
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    async with sessions() as session:
        end = await alert_positions.trail_end(session)
        assert end == 9
        for key in alert_positions.KEYS:
            assert await alert_positions.read(session, key) == end
    await seed_employees(sessions)
    rules = rules_and_mailer(engine, volume_min_bodies=3, security_mailboxes=f"MOH={BOB}")
    result = await rules.scan(now=NOW)
    assert result.raised == () and result.filed == 0
    await lockout(engine, ALICE)  # after the upgrade: filed
    assert (await rules.scan(now=NOW)).filed == 1
    again = await rules.scan(since=NOW, now=NOW)  # the history, evaluated on demand
    assert [r.fired.kind for r in again.raised] == [kinds.AlertKind.BODY_VOLUME]
    assert again.filed == 1


async def test_a_missing_position_starts_at_the_current_end(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    await seed_employees(sessions)
    await lockout(engine, ALICE)
    async with transaction(sessions) as session:
        await session.execute(delete(Meta).where(Meta.key.in_(alert_positions.KEYS)))
    rules = rules_and_mailer(engine, security_mailboxes=f"MOH={BOB}")
    assert (await rules.scan(now=NOW)).filed == 0
    async with sessions() as session:
        end = await alert_positions.trail_end(session)
        assert [await alert_positions.read(session, k) for k in alert_positions.KEYS] == [end] * 2
    await lockout(engine, ALICE)
    assert (await rules.scan(now=NOW)).filed == 1


async def test_a_restart_does_not_judge_old_days_on_a_short_history(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)
    # Fourteen days of 30 bodies a day, then one heavy day (60 bodies: under
    # 5 x the median 30, so no alert), all well over a lookback (30 days) ago.
    for days in range(73, 59, -1):
        await reads(engine, ALICE, NOW - dt.timedelta(days=days), 30)
    await reads(engine, ALICE, NOW - dt.timedelta(days=59), 60)
    quiet_weekends = {"after_hours_bodies": 1000}  # the weekend reading is not the point
    assert (await rules_and_mailer(engine, **quiet_weekends).scan(now=NOW)).raised == ()
    # An ordinary read today; then a restart. A restart that took the whole
    # lookback as new read from 60 days back only, saw the heavy day with a
    # baseline of zeros and raised a body-volume alert for it.
    await reads(engine, ALICE, NOW, 1)
    restarted = await rules_and_mailer(engine, **quiet_weekends).scan(now=NOW)
    assert restarted.raised == () and restarted.fired == 0
