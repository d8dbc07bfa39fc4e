"""Shared limits of the IMAP listeners: fair connection slots and the literal budget.

Owns: who gets a connection slot (a global cap, a cap per client address, and
addresses holding many refused first when slots run short), and the budget of
literal octets held in memory across all sessions. Must not: read or write
sockets; the connection code asks and gives back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHORT_FRACTION = 5  # slots are "short" when fewer than 1/5 of them are free


@dataclass
class ConnectionSlots:
    """Connection slots for both IMAP listeners (one pool)."""

    limit: int
    per_address: int
    busy: int  # when slots are short, an address holding this many gets no more
    open: int = 0
    _by_address: dict[str, int] = field(default_factory=dict)

    def held(self, address: str) -> int:
        return self._by_address.get(address, 0)

    def short(self) -> bool:
        """Fewer than a fifth of the slots free."""
        return (self.limit - self.open) * SHORT_FRACTION < self.limit

    def admit(self, address: str) -> bool:
        """Take a slot for a new connection from `address`, or say no."""
        held = self.held(address)
        if self.open >= self.limit or held >= self.per_address:
            return False
        if held >= self.busy and self.short():
            return False
        self.open += 1
        self._by_address[address] = held + 1
        return True

    def release(self, address: str) -> None:
        self.open -= 1
        held = self._by_address.get(address, 0) - 1
        if held > 0:
            self._by_address[address] = held
        else:
            self._by_address.pop(address, None)


@dataclass
class LiteralBudget:
    """Octets of literals announced and not yet released, across all sessions."""

    capacity: int
    used: int = 0

    def reserve(self, octets: int) -> bool:
        if self.used + octets > self.capacity:
            return False
        self.used += octets
        return True

    def release(self, octets: int) -> None:
        self.used = max(0, self.used - octets)


@dataclass(frozen=True)
class TransferRules:
    """How fast and how long one command may take to arrive (after its first line)."""

    min_rate: int = 1024  # octets per second, averaged over each window
    window_seconds: float = 30.0
    command_seconds: float = 900.0  # absolute, from the command's first line
    tls_handshake_seconds: float = 15.0
    max_literals: int = 1000  # per command, after login
