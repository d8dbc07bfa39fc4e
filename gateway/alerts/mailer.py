"""Filing alerts into the agencies' security mailboxes (docs/SECURITY-TEAMS.md §4).

Owns: `AlertMailer.file_pending()`: every alert audit event (any action of
kinds.KINDS: rule alerts, verification spikes, peer TLS, lockouts) newer than
the durable position `alert_mail_position` (gateway.store.alert_positions) is
filed once, as a message built by alerts.mail and DKIM-signed with the
gateway's key for the mailbox's domain (as receipts are), into the INBOX of its
security mailbox through the mailbox store (never SMTP). The position moves on
in the transaction that stores the message, by compare-and-set, so a restart
neither files an alert again nor skips one, and two nodes file an alert once;
it starts at the end of the trail of a new or upgraded installation (migration
0014). Which mailbox: for an alert about a directory employee (its subject),
the mailbox of the employee's agency (or of the nearest agency above it that
has one); else `default_security_mailbox`. The running gateway and `barid
alerts scan` both file through this class. Must not: write or block the
alert's audit event (it is committed before this runs), or log an alert's
subject.
Failure behaviour: an alert with no mailbox configured, or one whose address
is not an active directory employee, is logged ("alert not filed") and counted
`unrouted`, and the position moves past it; a database or store failure is
logged by class, counted `failed`, and the same alert is tried again at the
next scan (the position stays before it; later alerts wait behind it). A
mailbox domain the DKIM key cannot sign for files the message unsigned (the
signer source logs it).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.alerts.kinds import KINDS
from gateway.alerts.mail import AlertFacts, build_alert_mail
from gateway.alerts.progress import Progress
from gateway.config import AlertsSettings
from gateway.stamping.dkim import DkimSigner
from gateway.store import alert_positions
from gateway.store.alert_positions import MAIL_POSITION
from gateway.store.audit_alerts import alert_event
from gateway.store.blobs import BlobCipher
from gateway.store.mailbox.folders import INBOX
from gateway.store.mailbox.store import MailboxStore, append_in, ensure_folders_in, insert_content
from gateway.store.models import Agency, AuditEvent, Employee

log = logging.getLogger("barid.alerts")
POSITION_KEY = MAIL_POSITION
BATCH = 100
SignerFor = Callable[[str], DkimSigner | None]


@dataclass(frozen=True, slots=True)
class _Filing:
    event_id: int
    employee_id: int | None  # the security mailbox's owner; None: not filed
    raw: bytes
    meta: bytes


@dataclass(frozen=True, slots=True)
class _Batch:
    handled: int  # alerts the position moved past (filed or unrouted)
    filed: int
    stopped: bool  # a failure, or another node ahead: no more this round


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
        signer_for: SignerFor | None = None,
    ) -> None:
        self._mailboxes_of = settings.mailboxes
        self._default = settings.default_security_mailbox
        self._sessions = sessions
        self._store = mailboxes
        self._cipher = cipher
        self._describe = describe
        self._hostname = hostname
        self._admin_url = admin_url
        self._signer_for = signer_for

    async def position(self) -> int:
        """The id of the newest alert dealt with (made at the trail's end if missing)."""
        return await alert_positions.ensure(self._sessions, POSITION_KEY)

    async def pending(self) -> int:
        """How many alerts wait to be filed."""
        position = await self.position()
        async with self._sessions() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action.in_(sorted(KINDS)), AuditEvent.id > position)
                )
                or 0
            )

    async def file_pending(self, *, drain: bool = False, progress: Progress | None = None) -> int:
        """File the alerts not filed yet, BATCH of them; with `drain`, batch after
        batch until none is left (or one fails), noting progress. The count filed."""
        total = await self.pending() if progress is not None else 0
        filed = handled = 0
        while True:
            batch = await self._file_batch()
            filed += batch.filed
            handled += batch.handled
            if progress is not None:
                progress.note(f"alert messages: {handled} of {total} dealt with, {filed} filed")
            if not drain or batch.stopped or batch.handled < BATCH:
                return filed

    async def _file_batch(self) -> _Batch:
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
        filed = handled = 0
        for event_id in ids:
            try:
                filing = await self._prepare(event_id)
                async with self._store.writing("alert mail") as scope:
                    if not await alert_positions.advance(
                        scope.session, POSITION_KEY, position, event_id
                    ):
                        return _Batch(handled, filed, True)  # another node is ahead
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
                return _Batch(handled, filed, True)
            position = event_id
            handled += 1
            if filing.employee_id is None:
                metrics.ALERT_MAILS.labels("unrouted").inc()
            else:
                metrics.ALERT_MAILS.labels("filed").inc()
                filed += 1
        return _Batch(handled, filed, False)

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
        domain = address.rpartition("@")[2]
        signer = self._signer_for(domain) if self._signer_for is not None else None
        raw = build_alert_mail(
            facts, to=address, hostname=self._hostname, admin_url=self._admin_url, signer=signer
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
