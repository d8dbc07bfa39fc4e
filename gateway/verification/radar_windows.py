"""Where the verification radar counts: fixed windows per (scope, key).

Owns: `MemoryWindows` (this process only; a window opens with the first event
counted in it; at most `max_keys` client addresses and as many registry numbers,
the least recently seen evicted) and `SharedWindows` (in the database through
gateway.store.counters, shared by every node: windows aligned to multiples of
their length so all nodes agree, keys hashed). Scopes: "minute" and "fail" are
per client address, "registry" per registry number, "forged" has one key ("").
Each window also keeps up to MAX_ALERT_CLIENTS client addresses seen in it, for
alerts (for `SharedWindows`, those seen by this node). Must not: decide
anything (gateway.verification.radar holds the rules). Failure behaviour:
database errors propagate to the radar.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from gateway.store.counters import SharedCounters

MAX_ALERT_CLIENTS = 10
MAX_CLIENT_LISTS = 10_000  # windows whose alert clients a SharedWindows keeps
CLIENT_SCOPES = frozenset({"minute", "fail"})


@dataclass(frozen=True, slots=True)
class Counted:
    count: int  # events in the window, this one included
    left: int  # whole seconds until the window ends (at least 1)
    clients: tuple[str, ...] = ()


class RadarWindows(Protocol):
    async def bump(
        self, scope: str, key: str, now: float, length: float, client: str | None = None
    ) -> Counted: ...

    async def current(self, scope: str, key: str, now: float, length: float) -> int: ...


def _left(start: float, length: float, now: float) -> int:
    return max(1, math.ceil(start + length - now))


def _with_client(clients: list[str], client: str | None) -> None:
    if client is not None and len(clients) < MAX_ALERT_CLIENTS and client not in clients:
        clients.append(client)


@dataclass(slots=True)
class _Window:
    start: float = -math.inf
    count: int = 0
    clients: list[str] = field(default_factory=list)

    def add(self, now: float, length: float, client: str | None) -> Counted:
        if now - self.start >= length:
            self.start, self.count, self.clients = now, 0, []
        self.count += 1
        _with_client(self.clients, client)
        return Counted(self.count, _left(self.start, length, now), tuple(self.clients))

    def current(self, now: float, length: float) -> int:
        return self.count if now - self.start < length else 0


class MemoryWindows:
    """The windows of this process, bounded (see the module docstring)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._clients: OrderedDict[str, dict[str, _Window]] = OrderedDict()
        self._registries: OrderedDict[str, _Window] = OrderedDict()
        self._forged = _Window()

    @property
    def tracked(self) -> tuple[int, int]:
        return len(self._clients), len(self._registries)

    def _window(self, scope: str, key: str, create: bool) -> _Window | None:
        if scope == "forged":
            return self._forged
        if scope in CLIENT_SCOPES:
            windows = self._clients.get(key)
            if windows is None:
                if not create:
                    return None
                windows = self._clients[key] = {}
                while len(self._clients) > self.max_keys:
                    self._clients.popitem(last=False)
            elif create:
                self._clients.move_to_end(key)
            return windows.setdefault(scope, _Window()) if create else windows.get(scope)
        window = self._registries.get(key)
        if window is None and create:
            window = self._registries[key] = _Window()
            while len(self._registries) > self.max_keys:
                self._registries.popitem(last=False)
        elif window is not None and create:
            self._registries.move_to_end(key)
        return window

    async def bump(
        self, scope: str, key: str, now: float, length: float, client: str | None = None
    ) -> Counted:
        window = self._window(scope, key, True)
        assert window is not None
        return window.add(now, length, client)

    async def current(self, scope: str, key: str, now: float, length: float) -> int:
        window = self._window(scope, key, False)
        return 0 if window is None else window.current(now, length)


class SharedWindows:
    """The windows in the database, shared by every node (see the module docstring)."""

    def __init__(self, counters: SharedCounters) -> None:
        self._counters = counters
        self._clients: OrderedDict[tuple[str, str], tuple[int, list[str]]] = OrderedDict()

    def _alert_clients(
        self, scope: str, key: str, start: int, client: str | None
    ) -> tuple[str, ...]:
        if scope in CLIENT_SCOPES:
            return ()
        seen_start, clients = self._clients.pop((scope, key), (start, []))
        if seen_start != start:
            clients = []
        _with_client(clients, client)
        self._clients[(scope, key)] = (start, clients)
        while len(self._clients) > MAX_CLIENT_LISTS:
            self._clients.popitem(last=False)
        return tuple(clients)

    async def bump(
        self, scope: str, key: str, now: float, length: float, client: str | None = None
    ) -> Counted:
        count, left = await self._counters.bump_fixed("radar-" + scope, key, now, length)
        start = int(now // length * length)
        return Counted(
            count, max(1, math.ceil(left)), self._alert_clients(scope, key, start, client)
        )

    async def current(self, scope: str, key: str, now: float, length: float) -> int:
        return await self._counters.current_fixed("radar-" + scope, key, now, length)
