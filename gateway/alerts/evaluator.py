"""The alert evaluator: the rules run over the audit events new since the last scan.

Owns: one scan (read the events new since the position, with the history the
rules need before them; evaluate; raise each fired alert once: an audit event,
`barid_alerts_total{kind}`, the optional webhook; then, with a mailer, every
alert not filed yet into its security mailbox) and the periodic task of
`barid serve` ([alerts] scan_every_seconds). The position is durable
(`alert_scan_position`, gateway.store.alert_positions): the alerts of a scan
and the move of the position commit in one transaction, by compare-and-set, so
a restart re-evaluates nothing already evaluated and skips nothing that came
meanwhile, and of two nodes scanning at once one writes. (A position in memory
made every start treat the whole lookback as new, judging its oldest windows
on a history cut short.) A scan `since` a time re-evaluates from there and
leaves the position alone; an alert is still written once per (action,
subject, window). The webhook and the metric follow the commit. Must not: stop
the gateway when a scan fails (logged by class, tried again at the next wake),
put an address in a metric label, or block on the webhook.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.alerts.mailer import AlertMailer
from gateway.alerts.progress import Progress
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
from gateway.store import alert_positions, alert_trail
from gateway.store.alert_positions import SCAN_POSITION
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
    filed: int = 0  # alert messages filed into security mailboxes after it


class _Overtaken(Exception):
    """Another scan moved the position first: this one's writes roll back."""


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
        self._task: asyncio.Task[None] | None = None

    async def position(self) -> int:
        """The newest event id evaluated (made at the trail's end if missing)."""
        return await alert_positions.ensure(self._sessions, SCAN_POSITION)

    async def _window(self, since: dt.datetime | None) -> tuple[int, int, dt.datetime] | None:
        """(position, newest id, start of the new events), or None when nothing is new."""
        position = await self.position() if since is None else 0
        async with self._sessions() as session:
            newest = await alert_trail.newest_id(session)
            if since is not None:
                first = await alert_trail.first_id_since(session, since)
                if first is None:
                    return None
                return first - 1, newest, since
            if newest <= position:
                return None
            start = await alert_trail.oldest_time_after(session, position)
            return position, newest, start or dt.datetime.now(dt.UTC)

    async def scan(
        self,
        *,
        since: dt.datetime | None = None,
        now: dt.datetime | None = None,
        drain: bool = False,
        progress: Progress | None = None,
    ) -> ScanResult:
        """Run the rules over the events new since the last scan (or at and after
        `since`), write the alerts not written before, and move the position on;
        then file alerts not filed yet into their security mailboxes (with
        `drain`, all of them, else one batch). `now` is kept for callers; the
        window follows the events themselves."""
        result = await self._scan(since, progress)
        filed = await self.file_alerts(drain=drain, progress=progress)
        return dataclasses.replace(result, filed=filed)

    async def file_alerts(self, *, drain: bool = False, progress: Progress | None = None) -> int:
        """Alerts of every source filed into their security mailboxes (when a mailer
        is set); a failure is logged and counted by the mailer, never raised."""
        if self._mailer is None:
            return 0
        try:
            return await self._mailer.file_pending(drain=drain, progress=progress)
        except Exception as exc:
            log.error("alert filing failed", extra={"error": type(exc).__name__})
            return 0

    async def _scan(self, since: dt.datetime | None, progress: Progress | None) -> ScanResult:
        window = await self._window(since)
        if window is None:
            return ScanResult(0, 0, (), await self.position())
        position, newest, start = window
        async with self._sessions() as session:
            rows = await alert_trail.events(
                session, READ_ACTIONS, since=start - self._thresholds.lookback, upto=newest
            )
        trail = [TrailEvent(*row) for row in rows]
        if progress is not None:
            progress.note(f"alert rules: {len(trail)} events read, evaluating")
        fired = evaluate(trail, position, self._thresholds)
        moved = (position, newest) if since is None else None
        try:
            raised = await self._write(fired, moved)
        except _Overtaken:
            return ScanResult(len(trail), len(fired), (), newest)  # the other scan wrote them
        for item in raised:
            self._announce(item)
        return ScanResult(len(trail), len(fired), tuple(raised), newest)

    async def _write(self, fired: list[Fired], moved: tuple[int, int] | None) -> list[Raised]:
        """Each alert not written before, and the position's move (if any), in one
        transaction; _Overtaken (all rolled back) when the position had moved."""
        raised = []
        async with writing(self._sessions) as session:
            for alert in fired:
                event_id = await alert_trail.append_once(
                    session, self._audit_key, actor=ACTOR, action=alert.action,
                    subject=alert.subject, window=alert.window, details=alert.facts,
                )  # fmt: skip
                if event_id is not None:
                    raised.append(Raised(event_id, alert))
            if moved is not None and not await alert_positions.advance(
                session, SCAN_POSITION, *moved
            ):
                raise _Overtaken()
        return raised

    def _announce(self, item: Raised) -> None:
        """The metric, the log line and the webhook of an alert just committed."""
        alert = item.fired
        metrics.ALERTS.labels(alert.kind.value).inc()
        log.warning("alert raised", extra={"kind": alert.kind.value, "event": item.event_id})
        if self._webhook is not None:
            self._webhook.send(
                {"id": item.event_id, "kind": alert.kind.value, "action": alert.action,
                 "subject": alert.subject, "window": alert.window, "facts": alert.facts}
            )  # fmt: skip

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
