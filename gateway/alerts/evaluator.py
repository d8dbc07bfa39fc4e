"""The alert evaluator: the rules run over the audit events new since the last scan.

Owns: one scan (read the events new since the position, with the history the
rules need before them; evaluate; raise each fired alert once: an audit event,
`barid_alerts_total{kind}`, the optional webhook; then, with a mailer, every
alert not filed yet into its security mailbox) and the periodic task of
`barid serve` ([alerts] scan_every_seconds). The position is kept in memory:
the first scan after a start treats the whole lookback as new, and alerts
written already are recognised in the trail and not written again. Must not:
stop the gateway when a scan fails (logged by class, tried again at the next
wake), put an address in a metric label, or block on the webhook.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.alerts.mailer import AlertMailer
from gateway.alerts.rules import (
    ACCESS_ACTION,
    REJECT_ACTION,
    Fired,
    Thresholds,
    TrailEvent,
    evaluate,
)
from gateway.alerts.webhook import Webhook
from gateway.config import AlertsSettings
from gateway.store import alert_trail
from gateway.store.db import writing

log = logging.getLogger("barid.alerts")
ACTOR = "alert-rules"
READ_ACTIONS = (ACCESS_ACTION, REJECT_ACTION)


@dataclass(frozen=True, slots=True)
class Raised:
    """An alert written by a scan: its audit event and what fired."""

    event_id: int
    fired: Fired


@dataclass(frozen=True, slots=True)
class ScanResult:
    events: int  # events read (new and history)
    fired: int  # alerts the rules called for (written now or before)
    raised: tuple[Raised, ...]  # written now
    position: int  # the newest event id the scan covered


class AlertEvaluator:
    """`await scan()` runs the rules once; `start()` / `await stop()` the periodic task."""

    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[AsyncSession],
        audit_key: bytes,
        *,
        webhook: Webhook | None = None,
        mailer: AlertMailer | None = None,
    ) -> None:
        self._settings = settings
        self._thresholds = Thresholds.of(settings)
        self._sessions = sessions
        self._audit_key = audit_key
        url = settings.webhook_url
        self._webhook = webhook or (Webhook(url, settings.webhook_timeout_seconds) if url else None)
        self._mailer = mailer
        self.position: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def _window(
        self, since: dt.datetime | None, now: dt.datetime
    ) -> tuple[int, int, dt.datetime] | None:
        """(position, newest id, start of the new events), or None when nothing is new."""
        async with self._sessions() as session:
            newest = await alert_trail.newest_id(session)
            if since is not None:
                first = await alert_trail.first_id_since(session, since)
                if first is None:
                    return None
                return first - 1, newest, since
            if self.position is None:
                return 0, newest, now - self._thresholds.lookback
            if newest <= self.position:
                return None
            start = await alert_trail.oldest_time_after(session, self.position)
            return self.position, newest, start or now

    async def scan(
        self, *, since: dt.datetime | None = None, now: dt.datetime | None = None
    ) -> ScanResult:
        """Run the rules over the events new since the last scan (or at and after
        `since`), write the alerts not written before, and move the position on;
        then file every alert not filed yet into its security mailbox."""
        result = await self._scan(since, now)
        await self.file_alerts()
        return result

    async def file_alerts(self) -> int:
        """Alerts of every source filed into their security mailboxes (when a mailer
        is set); a failure is logged and counted by the mailer, never raised."""
        if self._mailer is None:
            return 0
        try:
            return await self._mailer.file_pending()
        except Exception as exc:
            log.error("alert filing failed", extra={"error": type(exc).__name__})
            return 0

    async def _scan(self, since: dt.datetime | None, now: dt.datetime | None) -> ScanResult:
        moment = now or dt.datetime.now(dt.UTC)
        window = await self._window(since, moment)
        if window is None:
            return ScanResult(0, 0, (), self.position or 0)
        position, newest, start = window
        async with self._sessions() as session:
            rows = await alert_trail.events(
                session, READ_ACTIONS, since=start - self._thresholds.lookback, upto=newest
            )
        trail = [TrailEvent(*row) for row in rows]
        fired = evaluate(trail, position, self._thresholds)
        raised = []
        for alert in fired:
            event_id = await self._raise(alert)
            if event_id is not None:
                raised.append(Raised(event_id, alert))
        if since is None:
            self.position = max(self.position or 0, newest)
        return ScanResult(len(trail), len(fired), tuple(raised), newest)

    async def _raise(self, alert: Fired) -> int | None:
        async with writing(self._sessions) as session:
            event_id = await alert_trail.append_once(
                session, self._audit_key, actor=ACTOR, action=alert.action,
                subject=alert.subject, window=alert.window, details=alert.facts,
            )  # fmt: skip
        if event_id is None:
            return None
        metrics.ALERTS.labels(alert.kind.value).inc()
        log.warning("alert raised", extra={"kind": alert.kind.value, "event": event_id})
        if self._webhook is not None:
            self._webhook.send(
                {"id": event_id, "kind": alert.kind.value, "action": alert.action,
                 "subject": alert.subject, "window": alert.window, "facts": alert.facts}
            )  # fmt: skip
        return event_id

    # ---- the periodic task of `barid serve`

    @property
    def enabled(self) -> bool:
        return self._settings.scan_every_seconds > 0

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="alert-rules")

    async def _run(self) -> None:
        while True:
            try:
                result = await self.scan()
                if result.raised:
                    log.info("alert scan", extra={"raised": len(result.raised)})
            except Exception as exc:
                log.error("alert scan failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(self._settings.scan_every_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._webhook is not None:
            await self._webhook.drain()
