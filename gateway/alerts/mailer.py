"""Filing alerts into the agencies' security mailboxes (docs/SECURITY-TEAMS.md §4).

Owns: `AlertMailer.file_pending()`: every alert audit event (any action of
kinds.KINDS: rule alerts, verification spikes, peer TLS, lockouts) newer than
the durable position `alert_mail_position` (table `meta`) is filed once, as a
message built by alerts.mail, into the INBOX of its security mailbox through
the mailbox store (never SMTP). The position moves on in the transaction that
stores the message, by compare-and-set, so two nodes file an alert once. Which
mailbox: for an alert about a directory employee (its subject), the mailbox of
the employee's agency (or of the nearest agency above it that has one); else
`default_security_mailbox`. Must not: write or block the alert's audit event
(it is committed before this runs), or log an alert's subject.
Failure behaviour: an alert with no mailbox configured, or one whose address
is not an active directory employee, is logged ("alert not filed") and counted
`unrouted`, and the position moves past it; a database or store failure is
logged by class, counted `failed`, and the same alert is tried again at the
next scan (the position stays before it; later alerts wait behind it).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.alerts.kinds import KINDS
from gateway.alerts.mail import AlertFacts, build_alert_mail
from gateway.config import AlertsSettings
from gateway.store.audit_alerts import alert_event
from gateway.store.blobs import BlobCipher
from gateway.store.db import transaction
from gateway.store.mailbox.folders import INBOX
from gateway.store.mailbox.store import MailboxStore, append_in, ensure_folders_in, insert_content
from gateway.store.models import Agency, AuditEvent, Employee, Meta

log = logging.getLogger("barid.alerts")
POSITION_KEY = "alert_mail_position"
BATCH = 100


@dataclass(frozen=True, slots=True)
class _Filing:
    event_id: int
    employee_id: int | None  # the security mailbox's owner; None: not filed
    raw: bytes
    meta: bytes


class AlertMailer:
    """`await file_pending()` files the alerts not filed yet; the count filed."""

    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[AsyncSession],
        mailboxes: MailboxStore,
        cipher: BlobCipher,
        *,
        describe: Callable[[bytes], Awaitable[bytes]],
        hostname: str,
        admin_url: str = "",
    ) -> None:
        self._mailboxes_of = settings.mailboxes
        self._default = settings.default_security_mailbox
        self._sessions = sessions
        self._store = mailboxes
        self._cipher = cipher
        self._describe = describe
        self._hostname = hostname
        self._admin_url = admin_url

    async def position(self) -> int:
        async with self._sessions() as session:
            return int(
                await session.scalar(select(Meta.value).where(Meta.key == POSITION_KEY)) or 0
            )

    async def file_pending(self) -> int:
        await self._ensure_position()
        position = await self.position()
        async with self._sessions() as session:
            ids = (
                await session.scalars(
                    select(AuditEvent.id)
                    .where(AuditEvent.action.in_(sorted(KINDS)), AuditEvent.id > position)
                    .order_by(AuditEvent.id)
                    .limit(BATCH)
                )
            ).all()
        filed = 0
        for event_id in ids:
            try:
                filing = await self._prepare(event_id)
                async with self._store.writing("alert mail") as scope:
                    if not await _advance(scope.session, position, event_id):
                        return filed  # another node filed it: it goes on from there
                    if filing.employee_id is not None:
                        boxes = await ensure_folders_in(scope.session, filing.employee_id)
                        content = await insert_content(
                            scope.session, self._cipher, kind="alert", meta=filing.meta,
                            data=[filing.raw],
                        )  # fmt: skip
                        await append_in(scope, boxes[INBOX], content)
            except Exception as exc:
                log.error("alert not filed, tried again at the next scan",
                          extra={"alert": event_id, "error": type(exc).__name__})  # fmt: skip
                metrics.ALERT_MAILS.labels("failed").inc()
                return filed
            position = event_id
            if filing.employee_id is None:
                metrics.ALERT_MAILS.labels("unrouted").inc()
            else:
                metrics.ALERT_MAILS.labels("filed").inc()
                filed += 1
        return filed

    async def _ensure_position(self) -> None:
        async with self._sessions() as session:
            if await session.get(Meta, POSITION_KEY) is not None:
                return
        try:
            async with transaction(self._sessions) as session:
                await session.execute(insert(Meta).values(key=POSITION_KEY, value=0))
        except IntegrityError:
            pass  # another node made it

    async def _prepare(self, event_id: int) -> _Filing:
        async with self._sessions() as session:
            event = await alert_event(session, event_id)
            assert event is not None
            address = await self._mailbox_for(session, event.target)
            owner = None
            if address:
                owner = await session.scalar(
                    select(Employee.id).where(
                        Employee.address == address, Employee.status == "active"
                    )
                )
        kind = KINDS[event.action].kind.value
        if not address:
            log.warning("alert not filed: no security mailbox configured for it",
                        extra={"alert": event_id, "kind": kind})  # fmt: skip
            return _Filing(event_id, None, b"", b"")
        if owner is None:
            log.warning("alert not filed: its security mailbox is not an active employee",
                        extra={"alert": event_id, "kind": kind})  # fmt: skip
            return _Filing(event_id, None, b"", b"")
        at = dt.datetime.fromisoformat(event.at.replace("Z", "+00:00"))
        facts = AlertFacts(event.id, at, event.action, event.target, event.details)
        raw = build_alert_mail(
            facts, to=address, hostname=self._hostname, admin_url=self._admin_url
        )
        return _Filing(event_id, owner, raw, await self._describe(raw))

    async def _mailbox_for(self, session: AsyncSession, subject: str) -> str:
        """The security mailbox of the subject's agency (or the nearest above it)
        when the subject is an employee; else the default one ("" if none)."""
        agency_id = None
        if subject:
            agency_id = await session.scalar(
                select(Employee.agency_id).where(Employee.address == subject.lower())
            )
        while agency_id is not None:
            agency = await session.get(Agency, agency_id)
            if agency is None:
                break
            if agency.code in self._mailboxes_of:
                return self._mailboxes_of[agency.code]
            agency_id = agency.parent_id
        return self._default


async def _advance(session: AsyncSession, before: int, to: int) -> bool:
    """Move the position from `before` to `to`; False when it was not at `before`."""
    result = await session.execute(
        update(Meta)
        .where(Meta.key == POSITION_KEY, Meta.value == before)
        .values(value=to)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
