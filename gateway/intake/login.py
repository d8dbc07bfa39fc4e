"""Password logins against the directory, shared by SMTP AUTH and IMAP LOGIN.

Owns: checking one login attempt (Argon2id off the event loop; unknown users
cost the same time), asking the failure throttle (gateway.intake.smtp.throttle: per
account and client address, per address, and a slow-down per account that
spares addresses the account logged in from before; one throttle for every
protocol, so guesses cannot be spread across SMTP and IMAP; its counts in the
database when several nodes share it, so they cannot be spread across nodes
either; counts that cannot be read or written make the attempt "unavailable",
never an unthrottled check), reporting lockouts
to the audit trail (gateway.intake.lockout_events), and serializing attempts (one at a
time per account and client address, at most `PER_ADDRESS` at once per address)
so parallel sessions cannot guess past the throttle while earlier checks still
run, while a user's attempt never queues behind another address's. A second
factor (the admin plane's TOTP) runs inside the same turn: a wrong code counts
as a failed login, so it is throttled like a wrong password. Must not:
speak any protocol; the caller maps `LoginResult.outcome` to its own reply.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway import metrics
from gateway.intake.lockout_events import LockoutEvents, LockoutSink
from gateway.intake.smtp.throttle import FailureCounters, LoginThrottle, ThrottleRules
from gateway.store.directory import Directory
from keys import passwords
from policies.directory import EmployeeStatus

log = logging.getLogger("barid.auth")

PER_ADDRESS = 8  # login checks running at once from one client address

# Checks a second factor for the (lower-cased) account once its password is right.
SecondFactor = Callable[[str], Awaitable[bool]]


class Outcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"  # wrong password, unknown or suspended account: one answer for all
    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"  # the directory could not be read


@dataclass(frozen=True)
class LoginResult:
    outcome: Outcome
    account: str  # the login, stripped and lower-cased

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


class Authenticator:
    def __init__(
        self,
        directory: Directory,
        *,
        clock: Callable[[], float] = time.time,
        rules: ThrottleRules | None = None,
        audit: LockoutSink | None = None,
        counters: FailureCounters | None = None,
    ):
        self._directory = directory
        self._clock = clock
        self.throttle = LoginThrottle(rules or ThrottleRules(), counters)
        self._gates = _Gates()
        self._events = LockoutEvents(audit)

    async def check(
        self,
        peer: str,
        login: str,
        password: str,
        *,
        protocol: str,
        second_factor: SecondFactor | None = None,
    ) -> LoginResult:
        """One login attempt from client address `peer`; see the module docstring."""
        account = login.strip().lower()
        gate = self._gates.take("c:" + peer, lambda: asyncio.Semaphore(PER_ADDRESS))
        pair = f"p:{account}\0{peer}"
        turn = self._gates.take(pair, asyncio.Lock)
        try:
            async with gate, turn:
                outcome = await self._check(peer, account, password, protocol, second_factor)
        finally:
            self._gates.give(pair)
            self._gates.give("c:" + peer)
        metrics.AUTH_ATTEMPTS.labels(protocol, outcome.value).inc()
        if outcome is Outcome.FAILED:
            log.info("authentication failed", extra={"peer": peer, "protocol": protocol})
        return LoginResult(outcome, account)

    async def _check(
        self,
        peer: str,
        account: str,
        password: str,
        protocol: str,
        second_factor: SecondFactor | None,
    ) -> Outcome:
        try:
            verdict = await self.throttle.check(account, peer, self._clock())
            if verdict.refuse:
                self._events.report(await self.throttle.refused(peer, self._clock()), protocol)
                return Outcome.THROTTLED
        except Exception:
            # Shared counters unreadable: no password is checked unthrottled.
            log.warning("login throttle unavailable", exc_info=True)
            return Outcome.UNAVAILABLE
        if verdict.delay:
            # The account fails from everywhere: slow down addresses it never logged
            # in from (never its known ones); no lock an attacker could set off.
            metrics.AUTH_SLOWDOWNS.labels(protocol).inc()
            await asyncio.sleep(verdict.delay)
        try:
            stored, status = await self._directory.password_hash(account)
        except Exception:
            log.warning("directory unavailable during login", exc_info=True)
            return Outcome.UNAVAILABLE
        # Argon2id takes ~0.1 s: never on the event loop. Unknown users cost the same.
        try:
            ok = await asyncio.to_thread(passwords.verify_or_dummy, stored, password)
        except passwords.PasswordHashError:
            log.error("stored password hash unusable", extra={"account_hash_error": True})
            ok = False
        if ok and status == EmployeeStatus.ACTIVE.value and second_factor is not None:
            try:
                ok = await second_factor(account)
            except Exception:
                log.warning("second factor unavailable during login", exc_info=True)
                return Outcome.UNAVAILABLE
        try:
            if ok and status == EmployeeStatus.ACTIVE.value:
                await self.throttle.succeeded(
                    account, peer, self._clock(), pair_failures=verdict.pair_failures
                )
                return Outcome.OK
            self._events.report(await self.throttle.failed(account, peer, self._clock()), protocol)
        except Exception:
            log.warning("login throttle unavailable", exc_info=True)
            return Outcome.UNAVAILABLE
        return Outcome.FAILED

    async def drain(self) -> None:
        """Wait for lockout events still being written (at shutdown, in tests)."""
        await self._events.drain()


class _Gates:
    """Locks and semaphores by key, kept only while someone holds or waits for them."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Any, int]] = {}

    def take(self, key: str, make: Callable[[], Any]) -> Any:
        item, users = self._items.get(key, (None, 0))
        if item is None:
            item = make()
        self._items[key] = (item, users + 1)
        return item

    def give(self, key: str) -> None:
        item, users = self._items[key]
        if users <= 1:
            del self._items[key]
        else:
            self._items[key] = (item, users - 1)
