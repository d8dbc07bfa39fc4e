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

The counts live behind `RadarWindows` (gateway.verification.radar_windows): in
this process's memory (bounded: at most `max_keys` (100,000) client addresses
and as many registry numbers, the least recently seen evicted), or in the
database shared by every node (`barid serve`), so the limits hold for the
cluster. A radar whose counts cannot be kept lets lookups through (logged).

The client is the ASGI client host (`request.client.host`): the connection's
peer, or the client address a trusted proxy gave in its PROXY protocol header
(gateway.serve.proxy_protocol).

Hook for every route that answers verification lookups (the API in
gateway/http/app.py; the HTML pages /v/... may use the same instance,
`app.state.verify_radar`):

    wait = await radar.check(client, "token")      # before any work
    if wait is not None: answer 429, Retry-After: wait
    ... make the lookup ...
    wait = await radar.record(client, "token", verdict.status, [verdict.registry])
    if wait is not None: answer 429, Retry-After: wait   # a failure while throttled
    else answer the verdict

`observe` is `record` without the alert sink: it returns the alerts to write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.alerts import kinds
from gateway.store import audit
from gateway.store.db import writing
from gateway.verification.radar_windows import MAX_ALERT_CLIENTS, MemoryWindows, RadarWindows

log = logging.getLogger("barid.verification.radar")

LookupKind = Literal["token", "document"]
Outcome = Literal["valid", "revoked", "unknown", "forged", "match", "no-match"]
FAILURES: frozenset[str] = frozenset({"unknown", "forged", "no-match"})
THROTTLED = "throttled"
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


class Radar:
    """Throttling and spike detection for verification lookups (see the module doc)."""

    def __init__(
        self,
        limits: RadarLimits | None = None,
        *,
        clock: Clock = time.time,
        alerts: AlertSink | None = None,
        windows: RadarWindows | None = None,
    ) -> None:
        self.limits = limits or RadarLimits()
        self._clock = clock
        self._sink = alerts
        self.windows: RadarWindows = windows or MemoryWindows(self.limits.max_keys)

    @property
    def tracked(self) -> tuple[int, int]:
        """(client addresses, registry numbers) tracked now in this process's memory."""
        windows = self.windows
        return windows.tracked if isinstance(windows, MemoryWindows) else (0, 0)

    # ---- the hook

    async def check(self, client: str, kind: LookupKind) -> int | None:
        """Before a lookup: None to go ahead, else the Retry-After seconds (the
        per-minute ceiling). Counts the lookup towards the ceiling."""
        try:
            minute = await self.windows.bump("minute", client, self._clock(), 60.0)
        except Exception as exc:
            log.warning("verify radar unavailable", extra={"error": type(exc).__name__})
            return None  # fail open: the lookup itself needs the database anyway
        if minute.count > self.limits.per_minute:
            metrics.VERIFY_LOOKUPS.labels(kind, THROTTLED).inc()
            return minute.left
        return None

    async def throttled(self, client: str) -> bool:
        """Whether the client's failing lookups are refused now (no state change)."""
        limits = self.limits
        failures = await self.windows.current("fail", client, self._clock(), limits.failure_window)
        return failures > limits.failures

    async def observe(
        self, client: str, kind: LookupKind, outcome: Outcome, registries: Iterable[str] = ()
    ) -> Observed:
        """After a lookup with this outcome: whether to refuse the answer, and the
        spike alerts that this lookup raised (to be written by the caller). A
        window's alert goes to the one lookup that crosses its limit (one per
        window, also across nodes sharing the counts)."""
        now = self._clock()
        limits, windows = self.limits, self.windows
        retry_after = None
        if outcome in FAILURES:
            failures = await windows.bump("fail", client, now, limits.failure_window)
            if failures.count > limits.failures:
                retry_after = failures.left
        metrics.VERIFY_LOOKUPS.labels(kind, outcome if retry_after is None else THROTTLED).inc()

        alerts: list[Alert] = []
        window = int(limits.spike_window)
        for registry in dict.fromkeys(r for r in registries if r):
            seen = await windows.bump("registry", registry, now, limits.spike_window, client)
            if seen.count == limits.registry_spike + 1:
                alerts.append(Alert("document-spike", seen.count, window, seen.clients, registry))
        if outcome == "forged":
            seen = await windows.bump("forged", "", now, limits.spike_window, client)
            if seen.count == limits.forgery_spike + 1:
                alerts.append(Alert("forgery-spike", seen.count, window, seen.clients))
        return Observed(retry_after, tuple(alerts))

    async def record(
        self, client: str, kind: LookupKind, outcome: Outcome, registries: Iterable[str] = ()
    ) -> int | None:
        """`observe`, then the alerts to the sink (a failing sink is logged, never
        raised): None to answer the verdict, else the Retry-After seconds. Counts
        that cannot be kept (database unavailable) let the verdict through."""
        try:
            observed = await self.observe(client, kind, outcome, registries)
        except Exception as exc:
            log.warning("verify radar unavailable", extra={"error": type(exc).__name__})
            return None
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
