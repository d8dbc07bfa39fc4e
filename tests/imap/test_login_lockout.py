"""The login throttle an attacker cannot use against a user (gateway/intake/login.py,
gateway/intake/smtp/throttle.py, gateway/intake/lockout_events.py), over SMTP AUTH and IMAP LOGIN
with real sockets against a whole gateway. The attacker is another loopback
address (127.0.0.2) than the user's usual one (127.0.0.1)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import select

from gateway import metrics
from gateway.intake.lockout_events import EVENTS_PER_MINUTE, LOCKOUT_ACTION, LockoutEvents
from gateway.intake.smtp.throttle import Lockout, LoginThrottle, ThrottleRules
from gateway.store.models import AuditEvent
from testkit.imap_hostile import MOF, Raw, Running, assert_no_server_errors, gateway_with, password
from testkit.throttle_rules import check_throttle_rules

USUAL, ATTACKER, NEW = "127.0.0.1", "127.0.0.2", "127.0.0.3"

Login = Callable[[Running, str, str, str], Awaitable[str]]  # -> "ok", "failed", "throttled"


@pytest.fixture(autouse=True)
def _no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    assert_no_server_errors(caplog)


@pytest.fixture
async def running(
    demo_template: Path, tmp_path: Path, credentials: dict[str, dict[str, Any]]
) -> AsyncIterator[Running]:
    """A gateway whose slow-down is at most 2 s (so the test can wait for it)."""
    overrides = {"BARID_LOGIN__SLOWDOWN_MAX_SECONDS": "2"}
    async with gateway_with(demo_template, tmp_path / "d", credentials, overrides) as live:
        yield live


async def imap_login(live: Running, source: str, user: str, secret: str) -> str:
    conn = await Raw.open(live.imap_port, source=source)
    try:
        await conn.greeting()
        await conn.starttls(live.tls)
        done = await conn.login(user, secret)
    finally:
        await conn.close()
    if done.startswith(b"L1 OK"):
        return "ok"
    assert done.startswith(b"L1 NO [AUTHENTICATIONFAILED]"), done
    return "refused"  # IMAP says the same for a wrong password and a throttled address


async def smtp_login(live: Running, source: str, user: str, secret: str) -> str:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=live.gateway.smtp_ports["submission"], start_tls=True,
        tls_context=live.tls, timeout=10, source_address=(source, 0),
    )  # fmt: skip
    await client.connect()
    try:
        await client.ehlo()
        await client.auth_plain(user, secret)
        return "ok"
    except aiosmtplib.SMTPAuthenticationError as exc:
        assert (exc.code, exc.message[:5]) in ((535, "5.7.8"), (454, "4.7.0")), exc
        return "failed" if exc.code == 535 else "throttled"
    finally:
        client.close()


def slowdowns() -> float:
    return sum(
        sample.value
        for family in metrics.REGISTRY.collect()
        if family.name == "barid_login_slowdowns"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def lockout_events(live: Running) -> list[tuple[str, dict[str, Any]]]:
    assert live.gateway.authenticator is not None
    await live.gateway.authenticator.drain()
    async with live.gateway.sessions() as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.action == LOCKOUT_ACTION))
        return [(row.target, json.loads(row.details)) for row in rows]


@pytest.mark.parametrize("wrong", [5, 50])
@pytest.mark.parametrize("login", [imap_login, smtp_login], ids=["imap", "smtp"])
async def test_wrong_passwords_from_one_address_do_not_lock_out_the_user(
    running: Running, login: Login, wrong: int
) -> None:
    live, right = running, password(running, MOF)
    assert await login(live, USUAL, MOF, right) == "ok"  # the usual address becomes known

    answers = [await login(live, ATTACKER, MOF, f"guess {n}") for n in range(wrong)]
    assert "ok" not in answers
    # The attacker's address is throttled for this account: even the right password fails.
    assert await login(live, ATTACKER, MOF, right) != "ok"
    if login is smtp_login:
        assert answers[:5] == ["failed"] * 5 and set(answers[5:]) <= {"throttled"}, answers

    # The user, from the usual address: in at once, no slow-down.
    before = slowdowns()
    assert await login(live, USUAL, MOF, right) == "ok"
    assert slowdowns() == before
    # From an address the account never used: slowed down, but never locked out.
    assert await login(live, NEW, MOF, right) == "ok"
    assert slowdowns() == before + 1

    events = await lockout_events(live)
    kinds = {(details["kind"], details.get("client", "")) for _, details in events}
    assert ("account-address", ATTACKER) in kinds and ("account-slowdown", "") in kinds, events
    assert all(target in ("", MOF) for target, _ in events), events
    if wrong == 50:  # 20 failures from one address: it is refused for every account
        assert ("address", ATTACKER) in kinds, events
        assert await login(live, ATTACKER, "minister@moh.gov.example", "x") != "ok"
    assert not [d for _, d in events if "guess" in json.dumps(d)]  # no password in the trail


# ---- the rules on their own ----------------------------------------------------------------


async def test_throttle_rules() -> None:
    await check_throttle_rules(LoginThrottle)


async def test_known_addresses_are_bounded() -> None:
    throttle = LoginThrottle(ThrottleRules(known_per_account=3))
    for n in range(10):
        await throttle.succeeded("user", f"10.0.0.{n}", 0)
    known = [await throttle.known("user", f"10.0.0.{n}", 0) for n in range(10)]
    assert known == [False] * 7 + [True] * 3


async def test_lockout_events_are_rate_limited() -> None:
    written: list[tuple[Lockout, int]] = []

    async def sink(lockout: Lockout, protocol: str, left_out: int) -> None:
        written.append((lockout, left_out))

    now = [0.0]
    events = LockoutEvents(sink, clock=lambda: now[0])
    events.report([Lockout("address", "", f"10.0.0.{n}", 20) for n in range(100)], "imap")
    await events.drain()
    assert len(written) == EVENTS_PER_MINUTE and all(left == 0 for _, left in written)
    now[0] = 61.0
    events.report([Lockout("address", "", "10.9.9.9", 20)], "smtp")
    await events.drain()
    assert written[-1][1] == 100 - EVENTS_PER_MINUTE  # the count left out is in the trail
