"""Password logins against the directory, shared by SMTP AUTH and IMAP LOGIN.

Owns: checking one login attempt (Argon2id off the event loop; unknown users
cost the same time), the failure throttle per account and per client address
(one throttle for every protocol, so guesses cannot be spread across SMTP and
IMAP), and serializing attempts (one at a time per account, at most
`PER_ADDRESS` at once per client address) so parallel sessions cannot guess past
the throttle while earlier checks still run. Must not: speak any protocol; the
caller maps `LoginResult.outcome` to its own reply.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway import metrics
from gateway.smtp.throttle import LoginThrottle
from gateway.store.directory import Directory
from keys import passwords
from policies.directory import EmployeeStatus

log = logging.getLogger("barid.auth")

PER_ADDRESS = 8  # login checks running at once from one client address


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
    def __init__(self, directory: Directory, *, clock: Callable[[], float] = time.monotonic):
        self._directory = directory
        self._clock = clock
        self.throttle = LoginThrottle()
        self._gates = _Gates()

    async def check(self, peer: str, login: str, password: str, *, protocol: str) -> LoginResult:
        """One login attempt from client address `peer`; see the module docstring."""
        account = login.strip().lower()
        gate = self._gates.take("c:" + peer, lambda: asyncio.Semaphore(PER_ADDRESS))
        turn = self._gates.take("a:" + account, asyncio.Lock)
        try:
            async with gate, turn:
                outcome = await self._check(peer, account, password)
        finally:
            self._gates.give("a:" + account)
            self._gates.give("c:" + peer)
        metrics.AUTH_ATTEMPTS.labels(protocol, outcome.value).inc()
        if outcome is Outcome.FAILED:
            log.info("authentication failed", extra={"peer": peer, "protocol": protocol})
        return LoginResult(outcome, account)

    async def _check(self, peer: str, account: str, password: str) -> Outcome:
        now = self._clock()
        if self.throttle.blocked(account, peer, now):
            return Outcome.THROTTLED
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
        if ok and status == EmployeeStatus.ACTIVE.value:
            self.throttle.succeeded(account)
            return Outcome.OK
        self.throttle.failed(account, peer, now)
        return Outcome.FAILED


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
