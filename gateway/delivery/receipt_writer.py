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
from typing import Any

from sqlalchemy import Select, and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from gateway import metrics
from gateway.delivery.evidence import EvidenceSigner, statement
from gateway.delivery.receipt_facts import (
    SETTLED,
    job_facts,
    parse_time,
    summarised,
    summary_facts,
)
from gateway.delivery.receipts import ReceiptKind, build_receipt
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
from gateway.store.models import Blob, DeliveryQueueEntry, Message, MessageCopy, ReceiptJob
from gateway.store.queue import shares_work, skip_locked

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
        summaries: Summaries | None = None,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._mailboxes = mailboxes
        self._describe = describe
        self._signer_for = signer_for
        self._verify_url = verify_url
        self._hostname = hostname
        self._batch = batch
        self._summaries = summaries or Summaries()
        self._shared = shares_work(sessions)  # PostgreSQL: claims skip locked rows

    async def write_receipts(self) -> int:
        """One round: owed receipts (and evidence), then the summaries that are due."""
        done = await self._write_jobs()
        return done + await self._write_summaries()

    async def _write_jobs(self) -> int:
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
            .where(ReceiptJob.state == "pending", ReceiptJob.kind != ReceiptKind.SUMMARY.value)
            .order_by(ReceiptJob.id)
            .limit(self._batch)
        )
        if lock:
            query = skip_locked(query, session, ReceiptJob)
        jobs = (await session.scalars(query)).all()
        threshold = self._summaries.threshold if self._summaries.signer is not None else 0
        many = await summarised(session, (job.message_id for job in jobs), threshold)
        rendered: list[_Receipt] = []
        broken: list[int] = []
        for job in jobs:
            try:
                rendered.append(await self._render(session, job, many))
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
        filed = [item for item in mine if item.evidence is None]  # evidence is not filed
        folders: dict[int, dict[str, int]] = {}
        for employee in sorted({item.sender_employee_id for item in filed}):
            folders[employee] = await ensure_folders_in(scope.session, employee)
        # Every Sent and Receipts row this batch appends to, locked in id order first.
        await lock_mailboxes(
            scope.session, [b[n] for b in folders.values() for n in (SENT, RECEIPTS)]
        )
        kinds: list[str] = []
        evidence: list[dict[str, object]] = []
        for item in mine:
            kinds.append(item.kind)
            if item.evidence is not None:
                evidence.append({"id": item.job_id, "evidence": item.evidence})
                continue
            if item.summary_owed:
                await scope.session.execute(insert(ReceiptJob).values(**_summary_job(item)))
            await self._store_receipt(scope, item, folders[item.sender_employee_id])
        if evidence:
            await scope.session.execute(update(ReceiptJob), evidence)
        return kinds

    async def _render(
        self, session: AsyncSession, job: ReceiptJob, summarised: set[int]
    ) -> _Receipt:
        message = await session.get(Message, job.message_id)
        assert message is not None
        facts, domain = await job_facts(session, message, job, self._verify_url)
        signer = self._signer_for(domain)
        kind = ReceiptKind(job.kind)
        evidence = self._summaries.signer
        if kind is ReceiptKind.DELIVERY and message.id in summarised and evidence is not None:
            # Evidence only: a signed statement kept with the job, not filed as mail.
            signed = statement(message.registry_number, message.sha256, job.recipient, job.event_at)
            return _Receipt.of(job, message, evidence=evidence.sign(signed))
        receipt = build_receipt(facts, hostname=self._hostname, signer=signer)
        original_meta = None
        if kind is ReceiptKind.ACCEPTANCE:
            blob = await session.get(Blob, message.original_blob_id)
            assert blob is not None
            await fetch_outside(self._cipher, [blob])
            original = open_blob(self._cipher, blob)
            original_meta = await self._describe(original)
        return _Receipt.of(
            job,
            message,
            original_meta=original_meta,
            receipt=receipt,
            receipt_meta=await self._describe(receipt),
            summary_owed=kind is ReceiptKind.ACCEPTANCE and message.id in summarised,
        )

    # ---- summaries ----------------------------------------------------------------------

    async def _write_summaries(self) -> int:
        """File the delivery summaries that are due: every copy settled (and its
        evidence stored), or the deadline passed."""
        if self._shared:
            async with self._mailboxes.writing("receipts") as scope:
                rendered = await self._due_summaries(scope.session, lock=True)
                kinds = await self._file(scope, rendered, [])
            return self._count(kinds, [])
        try:
            async with self._sessions() as session:
                rendered = await self._due_summaries(session)
        except DATABASE_ERRORS:
            raise StoreUnavailable() from None
        if not rendered:
            return 0
        async with self._mailboxes.writing("receipts") as scope:
            kinds = await self._file(scope, rendered, [])
        return self._count(kinds, [])

    async def _due_summaries(self, session: AsyncSession, *, lock: bool = False) -> list[_Receipt]:
        now = dt.datetime.now(dt.UTC)
        cutoff = (now - self._summaries.deadline).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        query = due_summaries(cutoff, self._batch)
        if lock:
            query = skip_locked(query, session, ReceiptJob)
        jobs = (await session.scalars(query)).all()
        out = []
        for job in jobs:
            message = await session.get(Message, job.message_id)
            assert message is not None
            facts, domain = await summary_facts(session, message, now, self._verify_url)
            signer = self._signer_for(domain)
            receipt = build_receipt(facts, hostname=self._hostname, signer=signer)
            meta = await self._describe(receipt)
            out.append(_Receipt.of(job, message, receipt=receipt, receipt_meta=meta))
        return out

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
class Summaries:
    """When a message gets one delivery summary instead of a receipt per copy."""

    threshold: int = 0  # more copies than this (0: never)
    deadline: dt.timedelta = dt.timedelta(hours=1)  # after acceptance, with what is pending
    signer: EvidenceSigner | None = None  # signs each delivery's evidence (None: no summaries)


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
    evidence: str | None = None  # a delivery of a summarised message: not filed
    summary_owed: bool = False  # an acceptance whose message gets a summary

    @classmethod
    def of(cls, job: ReceiptJob, message: Message, **rest: Any) -> _Receipt:
        rest.setdefault("original_meta", None)
        rest.setdefault("receipt", b"")
        rest.setdefault("receipt_meta", b"")
        return cls(
            job_id=job.id,
            kind=job.kind,
            message_id=message.id,
            sender_employee_id=message.sender_employee_id,
            original_blob_id=message.original_blob_id,
            original_size=message.size,
            event_at=parse_time(job.event_at),
            **rest,
        )


def _summary_job(item: _Receipt) -> dict[str, object]:
    return {
        "message_id": item.message_id,
        "kind": ReceiptKind.SUMMARY.value,
        "recipient": "",
        "state": "pending",
        "event_at": utcnow(),
    }


def due_summaries(cutoff: str, limit: int) -> Select[ReceiptJob]:
    """Pending summary jobs whose message has every copy settled and no receipt
    pending, or was accepted at or before `cutoff` (the deadline)."""
    owed = aliased(ReceiptJob)
    unsettled = (
        select(DeliveryQueueEntry.id)
        .join(MessageCopy, MessageCopy.id == DeliveryQueueEntry.copy_id)
        .where(MessageCopy.message_id == ReceiptJob.message_id)
        .where(DeliveryQueueEntry.state.not_in(SETTLED))
        .exists()
    )
    pending = (
        select(owed.id)
        .where(owed.message_id == ReceiptJob.message_id, owed.state == "pending")
        .where(owed.kind != ReceiptKind.SUMMARY.value)
        .exists()
    )
    return (
        select(ReceiptJob)
        .join(Message, Message.id == ReceiptJob.message_id)
        .where(ReceiptJob.kind == ReceiptKind.SUMMARY.value, ReceiptJob.state == "pending")
        .where(or_(Message.accepted_at <= cutoff, and_(~unsettled, ~pending)))
        .order_by(ReceiptJob.id)
        .limit(limit)
    )


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
