"""Receipts into mailboxes: rendering pending receipt jobs and filing them.

Owns: `ReceiptWriter`: each pending `receipt_jobs` row rendered with
gateway.delivery.receipts (DKIM-signed with the sender agency's domain) and stored in the
sender's Receipts (an acceptance also files the sender's original into Sent,
\\Seen), the job claimed inside the transaction that stores it (on PostgreSQL the
pending jobs are selected FOR UPDATE SKIP LOCKED in that transaction, so nodes
never render the same jobs). Must not:
build receipt bytes itself or touch the delivery queue.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.delivery.receipts import ReceiptFacts, ReceiptKind, build_receipt
from gateway.stamping.dkim import DkimSigner
from gateway.store.blobs import BlobCipher, fetch_outside, open_blob
from gateway.store.db import utcnow
from gateway.store.errors import DATABASE_ERRORS
from gateway.store.mailbox.folders import RECEIPTS, SENT
from gateway.store.mailbox.store import (
    MailboxStore,
    StoreUnavailable,
    WriteScope,
    append_in,
    ensure_folders_in,
    insert_content,
    lock_mailboxes,
)
from gateway.store.models import (
    Agency,
    Blob,
    Message,
    MessageCopy,
    MessageDocument,
    ReceiptJob,
)
from gateway.store.queue import shares_work, skip_locked
from policies.directory import Clearance

log = logging.getLogger("barid.delivery")


class ReceiptWriter:
    """Pending receipt jobs into the senders' mailboxes, exactly once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: BlobCipher,
        mailboxes: MailboxStore,
        *,
        describe: Callable[[bytes], Awaitable[bytes]],
        signer_for: Callable[[str], DkimSigner | None],
        verify_url: Callable[[str], str],
        hostname: str,
        batch: int,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._mailboxes = mailboxes
        self._describe = describe
        self._signer_for = signer_for
        self._verify_url = verify_url
        self._hostname = hostname
        self._batch = batch
        self._shared = shares_work(sessions)  # PostgreSQL: claims skip locked rows

    async def write_receipts(self) -> int:
        if self._shared:
            async with self._mailboxes.writing("receipts") as scope:
                rendered, broken = await self._pending(scope.session, lock=True)
                kinds = await self._file(scope, rendered, broken)
            return self._count(kinds, broken)
        try:
            async with self._sessions() as session:
                rendered, broken = await self._pending(session)
        except DATABASE_ERRORS:
            raise StoreUnavailable() from None
        if not rendered and not broken:
            return 0
        async with self._mailboxes.writing("receipts") as scope:
            kinds = await self._file(scope, rendered, broken)
        return self._count(kinds, broken)

    @staticmethod
    def _count(kinds: list[str], broken: list[int]) -> int:
        for kind in kinds:  # counted once committed
            metrics.RECEIPTS.labels(kind).inc()
        return len(broken) + len(kinds)

    async def _pending(
        self, session: AsyncSession, *, lock: bool = False
    ) -> tuple[list[_Receipt], list[int]]:
        """The pending jobs rendered, and the ids of those that cannot be."""
        query = (
            select(ReceiptJob)
            .where(ReceiptJob.state == "pending")
            .order_by(ReceiptJob.id)
            .limit(self._batch)
        )
        if lock:
            query = skip_locked(query, session, ReceiptJob)
        jobs = (await session.scalars(query)).all()
        rendered: list[_Receipt] = []
        broken: list[int] = []
        for job in jobs:
            try:
                rendered.append(await self._render(session, job))
            except ValueError:
                # Facts a receipt cannot state (a bug, not a client's doing):
                # logged, and the job set aside so the others go on.
                log.exception("receipt cannot be built", extra={"job": job.id})
                broken.append(job.id)
        return rendered, broken

    async def _file(
        self, scope: WriteScope, rendered: list[_Receipt], broken: list[int]
    ) -> list[str]:
        """Claim and store the rendered receipts in the scope's transaction; their kinds."""
        if broken:
            await scope.session.execute(
                update(ReceiptJob)
                .where(ReceiptJob.id.in_(broken))
                .values(state="done", done_at=utcnow(), detail="receipt could not be built")
            )
        claimed = await _claim_receipts(scope.session, [item.job_id for item in rendered])
        mine = [item for item in rendered if item.job_id in claimed]  # others: another worker's
        folders: dict[int, dict[str, int]] = {}
        for employee in sorted({item.sender_employee_id for item in mine}):
            folders[employee] = await ensure_folders_in(scope.session, employee)
        # Every Sent and Receipts row this batch appends to, locked in id order first.
        await lock_mailboxes(
            scope.session, [b[n] for b in folders.values() for n in (SENT, RECEIPTS)]
        )
        kinds: list[str] = []
        for item in mine:
            await self._store_receipt(scope, item, folders[item.sender_employee_id])
            kinds.append(item.kind)
        return kinds

    async def _render(self, session: AsyncSession, job: ReceiptJob) -> _Receipt:
        message = await session.get(Message, job.message_id)
        assert message is not None
        domain = await session.scalar(select(Agency.domain).where(Agency.id == message.agency_id))
        recipients = tuple(
            (
                await session.scalars(
                    select(MessageCopy.recipient)
                    .where(MessageCopy.message_id == message.id)
                    .order_by(MessageCopy.id)
                )
            ).all()
        )
        documents = tuple(
            (d.name, d.sha256)
            for d in (
                await session.scalars(
                    select(MessageDocument)
                    .where(MessageDocument.message_id == message.id)
                    .order_by(MessageDocument.position)
                )
            ).all()
        )
        kind = ReceiptKind(job.kind)
        facts = ReceiptFacts(
            kind=kind,
            registry=message.registry_number,
            token=message.token,
            verify_url=self._verify_url(message.token),
            sender_address=message.sender_address,
            sender_domain=str(domain),
            subject=" ".join(message.subject.split()),
            classification=Clearance(message.classification).label,
            accepted_at=_parse(message.accepted_at),
            event_at=_parse(job.event_at),
            recipients=recipients if kind is ReceiptKind.ACCEPTANCE else (job.recipient,),
            documents=documents,
            reason=job.reason,
            detail=job.detail,
            remote_mta=job.remote_mta,
            status=job.status,
        )
        receipt = build_receipt(
            facts, hostname=self._hostname, signer=self._signer_for(str(domain))
        )
        original_meta = None
        if kind is ReceiptKind.ACCEPTANCE:
            blob = await session.get(Blob, message.original_blob_id)
            assert blob is not None
            await fetch_outside(self._cipher, [blob])
            original = open_blob(self._cipher, blob)
            original_meta = await self._describe(original)
        return _Receipt(
            job_id=job.id,
            kind=job.kind,
            message_id=message.id,
            sender_employee_id=message.sender_employee_id,
            original_blob_id=message.original_blob_id,
            original_size=message.size,
            original_meta=original_meta,
            receipt=receipt,
            receipt_meta=await self._describe(receipt),
            event_at=_parse(job.event_at),
        )

    async def _store_receipt(
        self, scope: WriteScope, item: _Receipt, boxes: dict[str, int]
    ) -> None:
        session = scope.session
        if item.original_meta is not None:
            sent = await insert_content(
                session,
                self._cipher,
                kind="original",
                meta=item.original_meta,
                blob_ids=[item.original_blob_id],
                size=item.original_size,
                message_id=item.message_id,
            )
            await append_in(
                scope, boxes[SENT], sent, flags=frozenset({"\\Seen"}), internal_date=item.event_at
            )
        content = await insert_content(
            session,
            self._cipher,
            kind="receipt",
            meta=item.receipt_meta,
            data=[item.receipt],
            message_id=item.message_id,
        )
        await append_in(scope, boxes[RECEIPTS], content)


@dataclass(frozen=True)
class _Receipt:
    job_id: int
    kind: str
    message_id: int
    sender_employee_id: int
    original_blob_id: str
    original_size: int
    original_meta: bytes | None
    receipt: bytes
    receipt_meta: bytes
    event_at: dt.datetime


async def _claim_receipts(session: AsyncSession, job_ids: list[int]) -> set[int]:
    """Take pending receipt jobs for this transaction: the ids this update changed."""
    if not job_ids:
        return set()
    result = await session.execute(
        update(ReceiptJob)
        .where(ReceiptJob.id.in_(job_ids), ReceiptJob.state == "pending")
        .values(state="done", done_at=utcnow())
        .returning(ReceiptJob.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars().all())


def _parse(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
