"""Fair shares of what the SMTP listeners have: connection slots and message memory.

Owns: `SlotTable` (a global connection cap, a cap per client address, and, once
slots run short, refusing first the addresses that already hold many) and
`InflightBudget` (bytes of message content held in memory across all sessions).
Must not: touch sockets or reply to anyone; callers turn a refusal into a reply.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

SCARCE_FRACTION = 10  # the last tenth of the slots is "short"


@dataclass
class SlotTable:
    """Open sessions per client address. `admit` says why not, or "" when admitted.

    When at most a tenth of the slots are free (with ten slots or more), an
    address already holding a quarter of its own cap (at least one) is refused,
    so the last slots go to addresses that hold few or none.
    """

    limit: int
    per_address: int
    open: int = 0
    _by_address: dict[str, int] = field(default_factory=dict)

    def holding(self, address: str) -> int:
        return self._by_address.get(address, 0)

    def admit(self, address: str) -> str:
        held = self.holding(address)
        if self.open >= self.limit:
            return "full"
        if held >= self.per_address:
            return "address"
        reserve = self.limit // SCARCE_FRACTION
        if reserve and self.limit - self.open <= reserve and held >= max(1, self.per_address // 4):
            return "scarce"
        self.open += 1
        self._by_address[address] = held + 1
        return ""

    def release(self, address: str) -> None:
        self.open -= 1
        held = self._by_address.get(address, 0) - 1
        if held > 0:
            self._by_address[address] = held
        else:
            self._by_address.pop(address, None)


class InflightBudget:
    """Bytes of message content in memory across sessions.

    `try_take` is for a new DATA (refused at once when short: 452 4.3.1);
    `take` waits its turn (first come, first served) for a message that has
    arrived and must be held whole while it is checked and stored.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def try_take(self, amount: int) -> bool:
        if self._waiters or self.used + amount > self.capacity:
            return False
        self.used += amount
        return True

    async def take(self, amount: int) -> None:
        amount = min(amount, self.capacity)
        if not self._waiters and self.used + amount <= self.capacity:
            self.used += amount
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (amount, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except BaseException:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif not waiter.cancelled():
                self.used -= amount  # granted just as we were cancelled
            self._wake()
            raise

    def give(self, amount: int) -> None:
        self.used -= min(amount, self.capacity)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            amount, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if self.used + amount > self.capacity:
                return
            self._waiters.popleft()
            self.used += amount
            waiter.set_result(None)
