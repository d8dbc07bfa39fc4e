"""Failed-login throttling that an attacker cannot turn against a user (in memory).

Owns: counting failures in a sliding window per (account, client address), per
client address and per account, and deciding for each attempt: refuse it
without checking the password (that address has failed too often, for this
account or for any), or check it after a delay (the account has failed too
often from everywhere: a slow-down, never a lock). Addresses an account has
logged in from before ("known") are exempt from the account's slow-down, so the
real user never waits for an attacker's failures. Must not: know about
protocols, the directory or the audit trail; callers pass the clock in (`now`,
seconds) and write the `Lockout`s they are handed.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

MAX_TRACKED = 100_000  # failure keys kept; the oldest are forgotten first
MAX_ACCOUNTS_KNOWN = 100_000  # accounts whose known addresses are kept (least recent dropped)
MAX_LOGIN_TEXT = 254  # a login name longer than an address is cut in events


@dataclass(frozen=True)
class ThrottleRules:
    window: float = 15 * 60.0
    per_pair: int = 5  # failures for one account from one address: that address is refused
    per_address: int = 20  # failures from one address, any account: it is refused for all
    per_account: int = 5  # failures for one account from everywhere: the slow-down starts
    slowdown_base: float = 1.0  # first delay; doubled with every further failure
    slowdown_max: float = 30.0
    known_per_account: int = 16  # addresses remembered per account


@dataclass(frozen=True)
class Verdict:
    refuse: bool  # answer "throttled" without checking the password
    delay: float  # seconds to wait before checking it


@dataclass(frozen=True)
class Lockout:
    """A limit crossed: what the security team sees in the audit trail."""

    kind: str  # "address", "account-address" or "account-slowdown"
    account: str  # "" for kind "address"
    address: str  # "" for kind "account-slowdown"
    failures: int


@dataclass
class LoginThrottle:
    rules: ThrottleRules = field(default_factory=ThrottleRules)
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _known: OrderedDict[str, OrderedDict[str, None]] = field(default_factory=OrderedDict)

    def _recent(self, key: str, now: float) -> int:
        times = self._failures.get(key)
        if times is None:
            return 0
        while times and now - times[0] > self.rules.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return len(times)

    def _add(self, key: str, now: float) -> int:
        self._recent(key, now)
        if key not in self._failures and len(self._failures) >= MAX_TRACKED:
            self._failures.pop(next(iter(self._failures)))
        times = self._failures.setdefault(key, deque())
        times.append(now)
        return len(times)

    def known(self, account: str, address: str) -> bool:
        return address in self._known.get(account.lower(), {})

    def check(self, account: str, address: str, now: float) -> Verdict:
        """What to do with one attempt, before the password is looked at."""
        account = account.lower()
        rules = self.rules
        if (
            self._recent(f"p:{account}\0{address}", now) >= rules.per_pair
            or self._recent("c:" + address, now) >= rules.per_address
        ):
            return Verdict(True, 0.0)
        if self.known(account, address):
            return Verdict(False, 0.0)
        over = self._recent("a:" + account, now) - rules.per_account
        if over < 0:
            return Verdict(False, 0.0)
        return Verdict(False, min(rules.slowdown_max, rules.slowdown_base * 2.0 ** min(over, 30)))

    def failed(self, account: str, address: str, now: float) -> list[Lockout]:
        """A wrong password (or unknown account): count it; the limits it crossed."""
        account = account.lower()
        rules = self.rules
        crossed = self.refused(address, now)
        pair = self._add(f"p:{account}\0{address}", now)
        if pair == rules.per_pair:
            crossed.append(Lockout("account-address", account[:MAX_LOGIN_TEXT], address, pair))
        total = self._add("a:" + account, now)
        if total == rules.per_account:
            crossed.append(Lockout("account-slowdown", account[:MAX_LOGIN_TEXT], "", total))
        return crossed

    def refused(self, address: str, now: float) -> list[Lockout]:
        """An attempt refused or failed: it counts against the client address."""
        count = self._add("c:" + address, now)
        if count == self.rules.per_address:
            return [Lockout("address", "", address, count)]
        return []

    def succeeded(self, account: str, address: str) -> None:
        """A right password: the pair starts afresh and the address becomes known.
        The account's own count stays: a user's login does not reset an attack."""
        account = account.lower()
        self._failures.pop(f"p:{account}\0{address}", None)
        addresses = self._known.pop(account, None) or OrderedDict()
        addresses.pop(address, None)
        addresses[address] = None
        while len(addresses) > self.rules.known_per_account:
            addresses.popitem(last=False)
        self._known[account] = addresses
        while len(self._known) > MAX_ACCOUNTS_KNOWN:
            self._known.popitem(last=False)
