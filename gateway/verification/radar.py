"""Abuse and forgery radar of the public verification API: per-client throttling,
lookup metrics and spike alerts in the audit trail.

Owns: the decision to refuse a lookup (429 with Retry-After), the
`barid_verify_lookups_total{kind, outcome}` counts, and the "verify.alert" audit
events. Pure logic with the clock passed in; the only side effect besides the
metrics is the alert sink (`audit_alerts` writes to the audit trail). Must not:
put a token or a client address in a metric label, or write more than one alert
per window and spike kind (per registry number for document spikes).

Rules (defaults in `RadarLimits`; every window is fixed, opened by the first
event counted in it and lasting its length):

* failures: unknown or forged token lookups and no-match document checks. More
  than `failures` (30) failures from one client address within
  `failure_window` (10 minutes): its further failing lookups are answered 429
  until the window ends. Lookups that succeed (valid, revoked, match) are never
  refused by this rule: the lookup is made, and only a failing answer is
  replaced by the 429 (a forged token costs no database work, see service.py).
* ceiling: more than `per_minute` (600; `[http] verify_lookups_per_minute`)
  lookups of any outcome from one address within a minute: 429 before any work.
* spikes: more than `registry_spike` (200) lookups of one registry number
  within `spike_window` (10 minutes), or more than `forgery_spike` (100) forged
  tokens gateway-wide within it: one alert for the window ("document-spike" with
  the registry number, "forgery-spike" with the count), never one per lookup;
  the alert names at most 10 client addresses and never a token.

Memory is bounded: at most `max_keys` (100,000) client addresses and as many
registry numbers are tracked; beyond that the least recently seen are evicted.

The client is the ASGI client host (`request.client.host`): behind a reverse
proxy that does not set X-Forwarded-For (uvicorn's proxy headers, trusted from
127.0.0.1 only), all clients share one address.

Hook for every route that answers verification lookups (the API in
gateway/http/app.py; the HTML pages /v/... may use the same instance,
`app.state.verify_radar`):

    wait = radar.check(client, "token")            # before any work
    if wait is not None: answer 429, Retry-After: wait
    ... make the lookup ...
    wait = await radar.record(client, "token", verdict.status, [verdict.registry])
    if wait is not None: answer 429, Retry-After: wait   # a failure while throttled
    else answer the verdict

`observe` is `record` without the alert sink: it returns the alerts to write.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.alerts import kinds
from gateway.store import audit
from gateway.store.db import writing

log = logging.getLogger("barid.verification.radar")

LookupKind = Literal["token", "document"]
Outcome = Literal["valid", "revoked", "unknown", "forged", "match", "no-match"]
FAILURES: frozenset[str] = frozenset({"unknown", "forged", "no-match"})
THROTTLED = "throttled"
MAX_ALERT_CLIENTS = 10
ALERT_ACTION = kinds.VERIFY_ALERT_ACTION
ALERT_ACTOR = "verify-radar"
TOO_MANY = "too many failed lookups, try again later"
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RadarLimits:
    failures: int = 30
    failure_window: float = 600.0
    per_minute: int = 600
    registry_spike: int = 200
    forgery_spike: int = 100
    spike_window: float = 600.0
    max_keys: int = 100_000


@dataclass(frozen=True, slots=True)
class Alert:
    """One spike alert: `kind` is "document-spike" (with `registry`) or "forgery-spike"."""

    kind: Literal["document-spike", "forgery-spike"]
    count: int
    window_seconds: int
    clients: tuple[str, ...]  # at most MAX_ALERT_CLIENTS
    registry: str | None = None

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "count": self.count,
            "window_seconds": self.window_seconds,
            "clients": list(self.clients[:MAX_ALERT_CLIENTS]),
        }
        if self.registry is not None:
            out["registry"] = self.registry
        return out


@dataclass(frozen=True, slots=True)
class Observed:
    """What `observe` decided: `retry_after` (seconds) when the answer is a 429."""

    retry_after: int | None
    alerts: tuple[Alert, ...] = ()


AlertSink = Callable[[Alert], Awaitable[None]]


@dataclass(slots=True)
class _Window:
    """A fixed window of counted events: opened at `start`, `count` events in it."""

    start: float = -math.inf
    count: int = 0
    alerted: bool = False
    clients: list[str] = field(default_factory=list)

    def add(self, now: float, length: float, client: str | None = None) -> int:
        if now - self.start >= length:
            self.start, self.count, self.alerted = now, 0, False
            self.clients = []
        self.count += 1
        if (
            client is not None
            and len(self.clients) < MAX_ALERT_CLIENTS
            and client not in self.clients
        ):
            self.clients.append(client)
        return self.count

    def current(self, now: float, length: float) -> int:
        return self.count if now - self.start < length else 0

    def left(self, now: float, length: float) -> int:
        """Whole seconds until the window ends (at least 1)."""
        return max(1, math.ceil(self.start + length - now))


@dataclass(slots=True)
class _Client:
    minute: _Window = field(default_factory=_Window)
    failures: _Window = field(default_factory=_Window)


class Radar:
    """Throttling and spike detection for verification lookups (see the module doc)."""

    def __init__(
        self,
        limits: RadarLimits | None = None,
        *,
        clock: Clock = time.monotonic,
        alerts: AlertSink | None = None,
    ) -> None:
        self.limits = limits or RadarLimits()
        self._clock = clock
        self._sink = alerts
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._registries: OrderedDict[str, _Window] = OrderedDict()
        self._forgeries = _Window()

    # ---- state (bounded)

    def _client(self, client: str) -> _Client:
        state = self._clients.get(client)
        if state is None:
            state = self._clients[client] = _Client()
            while len(self._clients) > self.limits.max_keys:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        return state

    def _registry(self, registry: str) -> _Window:
        window = self._registries.get(registry)
        if window is None:
            window = self._registries[registry] = _Window()
            while len(self._registries) > self.limits.max_keys:
                self._registries.popitem(last=False)
        else:
            self._registries.move_to_end(registry)
        return window

    @property
    def tracked(self) -> tuple[int, int]:
        """(client addresses, registry numbers) tracked now."""
        return len(self._clients), len(self._registries)

    # ---- the hook

    def check(self, client: str, kind: LookupKind) -> int | None:
        """Before a lookup: None to go ahead, else the Retry-After seconds (the
        per-minute ceiling). Counts the lookup towards the ceiling."""
        now = self._clock()
        state = self._client(client)
        if state.minute.add(now, 60.0) > self.limits.per_minute:
            metrics.VERIFY_LOOKUPS.labels(kind, THROTTLED).inc()
            return state.minute.left(now, 60.0)
        return None

    def throttled(self, client: str) -> bool:
        """Whether the client's failing lookups are refused now (no state change)."""
        state = self._clients.get(client)
        if state is None:
            return False
        return state.failures.current(self._clock(), self.limits.failure_window) > (
            self.limits.failures
        )

    def observe(
        self, client: str, kind: LookupKind, outcome: Outcome, registries: Iterable[str] = ()
    ) -> Observed:
        """After a lookup with this outcome: whether to refuse the answer, and the
        spike alerts that this lookup raised (to be written by the caller)."""
        now = self._clock()
        limits = self.limits
        state = self._client(client)
        retry_after = None
        if outcome in FAILURES:
            failures = state.failures.add(now, limits.failure_window)
            if failures > limits.failures:
                retry_after = state.failures.left(now, limits.failure_window)
        metrics.VERIFY_LOOKUPS.labels(kind, outcome if retry_after is None else THROTTLED).inc()

        alerts: list[Alert] = []
        window = int(limits.spike_window)
        for registry in dict.fromkeys(r for r in registries if r):
            seen = self._registry(registry)
            count = seen.add(now, limits.spike_window, client)
            if count > limits.registry_spike and not seen.alerted:
                seen.alerted = True
                alerts.append(Alert("document-spike", count, window, tuple(seen.clients), registry))
        if outcome == "forged":
            count = self._forgeries.add(now, limits.spike_window, client)
            if count > limits.forgery_spike and not self._forgeries.alerted:
                self._forgeries.alerted = True
                alerts.append(Alert("forgery-spike", count, window, tuple(self._forgeries.clients)))
        return Observed(retry_after, tuple(alerts))

    async def record(
        self, client: str, kind: LookupKind, outcome: Outcome, registries: Iterable[str] = ()
    ) -> int | None:
        """`observe`, then the alerts to the sink (a failing sink is logged, never
        raised): None to answer the verdict, else the Retry-After seconds."""
        observed = self.observe(client, kind, outcome, registries)
        for alert in observed.alerts:
            log.warning(
                "verification lookups spike", extra={"kind": alert.kind, "count": alert.count}
            )
            if self._sink is None:
                continue
            try:
                await self._sink(alert)
            except Exception as exc:
                log.error("verify alert not recorded", extra={"error": type(exc).__name__})
            else:
                metrics.ALERTS.labels(kinds.AlertKind.VERIFICATION_SPIKE.value).inc()
        return observed.retry_after


def audit_alerts(sessions: async_sessionmaker[AsyncSession], key: bytes) -> AlertSink:
    """An alert sink appending "verify.alert" events (outcome "alert") to the audit trail."""

    async def write(alert: Alert) -> None:
        async with writing(sessions) as session:
            await audit.append(
                session,
                key,
                actor=ALERT_ACTOR,
                action=ALERT_ACTION,
                target=alert.registry or "",
                outcome="alert",
                details=alert.details(),
            )

    return write
