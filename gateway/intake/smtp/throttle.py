"""Failed-login throttling that an attacker cannot turn against a user.

Owns: counting failures in a sliding window per (account, client address), per
client address and per account, and deciding for each attempt: refuse it
without checking the password (that address has failed too often, for this
account or for any), or check it after a delay (the account has failed too
often from everywhere: a slow-down, never a lock). Addresses an account has
logged in from before ("known") are exempt from the account's slow-down, so the
real user never waits for an attacker's failures. Must not: know about
protocols, the directory or the audit trail; callers pass the clock in (`now`,
seconds since the epoch) and write the `Lockout`s they are handed.

The decision (`decide`, the limits crossed) is pure; the counts live behind
`FailureCounters`: `MemoryCounters` here (one process, exact sliding windows,
bounded memory) or gateway.store.counters.LoginFailureCounters (in the database,
shared by every node, so a limit of N holds for the cluster). A successful login
writes only when there is something to reset (failures of that pair) or an
address to remember.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
    pair_failures: int = field(default=0, compare=False)  # of this account and address


@dataclass(frozen=True)
class Lockout:
    """A limit crossed: what the security team sees in the audit trail."""

    kind: str  # "address", "account-address" or "account-slowdown"
    account: str  # "" for kind "address"
    address: str  # "" for kind "account-slowdown"
    failures: int


def pair_key(account: str, address: str) -> str:
    return f"p:{account}\0{address}"


def decide(rules: ThrottleRules, pair: int, address: int, account: int, known: bool) -> Verdict:
    """What to do with an attempt, given the recent failures of its pair, its
    address and its account, and whether the account logged in from there before."""
    if pair >= rules.per_pair or address >= rules.per_address:
        return Verdict(True, 0.0, pair)
    over = account - rules.per_account
    if known or over < 0:
        return Verdict(False, 0.0, pair)
    return Verdict(False, min(rules.slowdown_max, rules.slowdown_base * 2.0 ** min(over, 30)), pair)


class FailureCounters(Protocol):
    """Where the failures are counted; keys are "p:<account>\\0<address>",
    "c:<address>" and "a:<account>"."""

    async def recent(self, keys: Sequence[str], now: float) -> list[int]: ...

    async def add(self, keys: Sequence[str], now: float) -> list[int]: ...

    async def forget(self, key: str) -> None: ...

    async def known(self, account: str, address: str, now: float) -> bool: ...

    async def remember(self, account: str, address: str, now: float) -> None: ...


@dataclass
class MemoryCounters:
    """Failures of this process only, in exact sliding windows (bounded)."""

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

    async def recent(self, keys: Sequence[str], now: float) -> list[int]:
        return [self._recent(key, now) for key in keys]

    async def add(self, keys: Sequence[str], now: float) -> list[int]:
        return [self._add(key, now) for key in keys]

    async def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    async def known(self, account: str, address: str, now: float) -> bool:
        return address in self._known.get(account, {})

    async def remember(self, account: str, address: str, now: float) -> None:
        addresses = self._known.pop(account, None) or OrderedDict()
        addresses.pop(address, None)
        addresses[address] = None
        while len(addresses) > self.rules.known_per_account:
            addresses.popitem(last=False)
        self._known[account] = addresses
        while len(self._known) > MAX_ACCOUNTS_KNOWN:
            self._known.popitem(last=False)


class LoginThrottle:
    """The rules over a store of counts (in memory unless `counters` is given)."""

    def __init__(
        self, rules: ThrottleRules | None = None, counters: FailureCounters | None = None
    ) -> None:
        self.rules = rules or ThrottleRules()
        self.counters: FailureCounters = counters or MemoryCounters(self.rules)

    async def known(self, account: str, address: str, now: float) -> bool:
        return await self.counters.known(account.lower(), address, now)

    async def check(self, account: str, address: str, now: float) -> Verdict:
        """What to do with one attempt, before the password is looked at."""
        account = account.lower()
        pair, client, total = await self.counters.recent(
            [pair_key(account, address), "c:" + address, "a:" + account], now
        )
        if pair < self.rules.per_pair and client < self.rules.per_address:
            known = await self.counters.known(account, address, now)
        else:
            known = False
        return decide(self.rules, pair, client, total, known)

    async def failed(self, account: str, address: str, now: float) -> list[Lockout]:
        """A wrong password (or unknown account): count it; the limits it crossed."""
        account = account.lower()
        rules = self.rules
        client, pair, total = await self.counters.add(
            ["c:" + address, pair_key(account, address), "a:" + account], now
        )
        crossed = [Lockout("address", "", address, client)] if client == rules.per_address else []
        if pair == rules.per_pair:
            crossed.append(Lockout("account-address", account[:MAX_LOGIN_TEXT], address, pair))
        if total == rules.per_account:
            crossed.append(Lockout("account-slowdown", account[:MAX_LOGIN_TEXT], "", total))
        return crossed

    async def refused(self, address: str, now: float) -> list[Lockout]:
        """An attempt refused or failed: it counts against the client address."""
        (count,) = await self.counters.add(["c:" + address], now)
        if count == self.rules.per_address:
            return [Lockout("address", "", address, count)]
        return []

    async def succeeded(
        self, account: str, address: str, now: float, *, pair_failures: int = 1
    ) -> None:
        """A right password: the pair starts afresh (when it had failures) and the
        address becomes known. The account's own count stays: a user's login does
        not reset an attack."""
        account = account.lower()
        if pair_failures:
            await self.counters.forget(pair_key(account, address))
        await self.counters.remember(account, address, now)
