"""Failed-login throttling per account and per client address (in memory).

Owns: counting failures in a sliding window and saying when to refuse without
checking the password. Must not: know about SMTP or the directory; callers pass
the clock in (`now`, seconds) so the rules are testable without waiting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW_SECONDS = 15 * 60.0
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
MAX_TRACKED = 100_000  # keys kept; the oldest are forgotten first


@dataclass
class LoginThrottle:
    window: float = WINDOW_SECONDS
    per_account: int = MAX_FAILURES_PER_ACCOUNT
    per_address: int = MAX_FAILURES_PER_ADDRESS
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked(self, account: str, address: str, now: float) -> bool:
        """True when either the account or the client address has too many recent failures."""
        return (
            len(self._recent("a:" + account.lower(), now)) >= self.per_account
            or len(self._recent("c:" + address, now)) >= self.per_address
        )

    def failed(self, account: str, address: str, now: float) -> None:
        for key in ("a:" + account.lower(), "c:" + address):
            if key not in self._failures and len(self._failures) >= MAX_TRACKED:
                self._failures.pop(next(iter(self._failures)))
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, account: str) -> None:
        self._failures.pop("a:" + account.lower(), None)
