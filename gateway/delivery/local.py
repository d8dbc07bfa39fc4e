"""Local delivery and receipts: queued copies into INBOXes, receipts into Receipts.

Owns: taking `delivery_queue` entries with the local target and `receipt_jobs`
rows (rendered and filed by gateway.delivery.receipt_writer), and turning each
into mailbox content exactly once. Must not: build
message bytes beyond calling gateway.delivery.receipts, or speak IMAP/SMTP.

Exactly once, across crashes and several workers (nodes): each unit of work is
claimed *inside* the transaction that stores its result, by a guarded update
(`UPDATE delivery_queue SET state='delivered' ... WHERE id=:id AND
state='queued'`, and likewise for receipt jobs). On PostgreSQL (several nodes)
the due entries are selected FOR UPDATE SKIP LOCKED inside that same
transaction, so two nodes take disjoint entries and never wait on each other;
on SQLite a second worker's update waits on the write lock and then matches
nothing, so its transaction stores nothing. A crash before the commit leaves
the entry queued and nothing stored, to be done again after restart.

Per delivered copy, in one transaction: the queue entry becomes "delivered"
with its delivery time; the copy (prefix + stored original + suffix, by blob
reference) gets the recipient's next INBOX UID; a pending delivery receipt (for a
message summarised for its sender, a done one carrying its signed evidence,
gateway.delivery.evidence) and a "message.deliver" audit event are written. A
copy that cannot be read (a damaged blob) waits `DEFER_SECONDS` and does not
hold up the others. A recipient no longer in the directory, or suspended, makes
the entry "failed" with a non-delivery receipt.
Per acceptance receipt job: the sender's own original goes to Sent (flagged
\\Seen) and the acceptance receipt to Receipts. Receipts are DKIM-signed.

Call order: `start()` -> `wake()` whenever work may be waiting (the message
store calls it after each acceptance) -> `stop()` -> `close()` (ends the parse
process). `run_once()` does one round (used by tests and the benchmark). Units
are written a batch per transaction (32 copies, 8 receipts), so the SQLite write
lock is never held long while acceptances wait; large copies are described in a
second process (gateway.delivery.pool).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.delivery.evidence import statement
from gateway.delivery.loop import WorkerLoop
from gateway.delivery.parse_worker import COPY_MAGIC, copy_request
from gateway.delivery.pool import ParsePool
from gateway.delivery.receipt_facts import SummarisedMessages
from gateway.delivery.receipt_writer import ReceiptWriter, Summaries
from gateway.model.target import LOCAL, DeliveryTarget
from gateway.stamping.dkim import DkimSigner
from gateway.store import audit
from gateway.store.blobs import BlobCipher, fetch_outside, open_blob
from gateway.store.db import utcnow
from gateway.store.errors import DATABASE_ERRORS
from gateway.store.mailbox.folders import INBOX
from gateway.store.mailbox.store import (
    MailboxStore,
    NewCopy,
    StoreUnavailable,
    WriteScope,
    ensure_folders_many,
    file_copies_in,
)
from gateway.store.models import (
    Blob,
    DeliveryQueueEntry,
    Employee,
    Message,
    MessageCopy,
    ReceiptJob,
)
from gateway.store.queue import QueueAdmin, shares_work, skip_locked
from policies.directory import EmployeeStatus

log = logging.getLogger("barid.delivery")

BATCH = 8  # receipts per write transaction: short holds of the SQLite write lock
# Copies per delivery transaction: a batch is filed in a few statements whatever its
# size (one folder lookup, one UID reservation per distinct count, bulk inserts).
DELIVERY_BATCH = 32
BATCH_BYTES = 64 * 1024 * 1024
DEFER_SECONDS = 300.0
# The parse process's function that takes a copy's parts (gateway.imap.describe_copy).
COPY_DESCRIBE = "gateway.imap.describe_copy:describe_job"
QUEUE_GAUGE_SECONDS = 10.0  # queue depth gauges are refreshed at most this often


@dataclass(frozen=True)
class _Copy:
    entry_id: int
    copy_id: int
    message_id: int
    recipient: str
    trace_code: str
    registry: str
    blob_ids: tuple[str, str, str]  # prefix, original, suffix
    size: int
    message_sha256: str


@dataclass(frozen=True)
class _Prepared:
    copy: _Copy
    meta: bytes
    size: int


class MailWorker(WorkerLoop):
    log = log
    what = "delivery"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: BlobCipher,
        mailboxes: MailboxStore,
        *,
        describe: str,
        signer_for: Callable[[str], DkimSigner | None],
        verify_url: Callable[[str], str],
        hostname: str,
        audit_key: bytes,
        summaries: Summaries | None = None,
    ) -> None:
        super().__init__()
        self._sessions = sessions
        self._cipher = cipher
        self._mailboxes = mailboxes
        # `describe` names the function ("module:function"); large copies are
        # described in a second process (see gateway.delivery.pool).
        self._pool = ParsePool(describe)
        self._copy_requests = describe == COPY_DESCRIBE
        self._describe = self._pool
        self._audit_key = audit_key
        self._gauges_at: float | None = None
        self._shared = shares_work(sessions)  # PostgreSQL: claims skip locked rows
        self._receipts = ReceiptWriter(
            sessions,
            cipher,
            mailboxes,
            describe=self.describe,
            signer_for=signer_for,
            verify_url=verify_url,
            hostname=hostname,
            batch=BATCH,
            summaries=summaries,
        )
        self._gauge_targets: set[DeliveryTarget] = {LOCAL}
        self._summaries = summaries or Summaries()
        self._many = SummarisedMessages(
            self._summaries.threshold if self._summaries.signer is not None else 0
        )

    # ---- running ---------------------------------------------------------------------

    async def describe(self, raw: bytes) -> bytes:
        """The stored description of a mail (parsed in the parse process when large)."""
        if self._copy_requests and raw.startswith(COPY_MAGIC):
            # Bytes from outside that look like a copy request: sent as a copy with no
            # prefix or suffix, which the parse process describes whole.
            raw = copy_request(b"", raw, b"")
        return await self._describe(raw)

    async def close(self) -> None:
        """Stop the parse process (after `stop`)."""
        await self._pool.close()

    async def run_once(self) -> int:
        """One round: local deliveries first (they create receipt jobs), then
        receipts. The number of units done."""
        await self._refresh_queue_gauges()
        return await self.deliver_local() + await self.write_receipts()

    async def _refresh_queue_gauges(self) -> None:
        """The queue depth gauges, at most every QUEUE_GAUGE_SECONDS; a failure only logs."""
        now = time.monotonic()
        if self._gauges_at is not None and now - self._gauges_at < QUEUE_GAUGE_SECONDS:
            return
        self._gauges_at = now
        try:
            depths = await QueueAdmin(self._sessions, self._audit_key).depth_by_target()
        except Exception:
            log.warning("queue depth gauges not refreshed", exc_info=True)
            return
        self._gauge_targets |= set(depths)  # targets come from the configuration: bounded
        for target in self._gauge_targets:
            depth = depths.get(target)
            label = target.column
            metrics.QUEUE_DEPTH.labels(label).set(depth.waiting if depth else 0)
            metrics.QUEUE_OLDEST_SECONDS.labels(label).set(depth.oldest_seconds if depth else 0)

    # ---- deliveries ------------------------------------------------------------------------

    async def deliver_local(self) -> int:
        if self._shared:
            return await self._deliver_locked()
        try:
            async with self._sessions() as session:
                copies = await self._due_copies(session)
                prepared, broken = await self._prepare(session, copies)
        except DATABASE_ERRORS:
            raise StoreUnavailable() from None
        if not prepared and not broken:
            return 0
        async with self._mailboxes.writing("deliver") as scope:
            outcomes = await self._deliver_batch(scope, prepared)
            for copy in broken:
                await self._defer(scope.session, copy.entry_id)
        return self._count(outcomes, broken)

    async def _deliver_locked(self) -> int:
        """PostgreSQL: take the due entries FOR UPDATE SKIP LOCKED in the transaction
        that stores them, so several nodes share the queue without overlap or waits."""
        async with self._mailboxes.writing("deliver") as scope:
            copies = await self._due_copies(scope.session, lock=True)
            prepared, broken = await self._prepare(scope.session, copies)
            outcomes = await self._deliver_batch(scope, prepared)
            for copy in broken:
                await self._defer(scope.session, copy.entry_id)
        return self._count(outcomes, broken)

    @staticmethod
    def _count(outcomes: list[str], broken: list[_Copy]) -> int:
        for outcome in outcomes:  # counted once committed
            metrics.DELIVERIES.labels(outcome).inc()
        return len(outcomes) + len(broken)

    async def _prepare(
        self, session: AsyncSession, copies: list[_Copy]
    ) -> tuple[list[_Prepared], list[_Copy]]:
        prepared: list[_Prepared] = []
        broken: list[_Copy] = []
        blobs = await self._blob_rows(session, copies)
        plain: dict[str, bytes] = {}  # an original shared by copies is decrypted once
        for copy in copies:
            try:
                # Blobs kept in a blob store are fetched per copy (a shared original
                # once), so one damaged object holds up only its own copy.
                await fetch_outside(self._cipher, [blobs[b] for b in copy.blob_ids if b in blobs])
                parts = self._copy_parts(copy, blobs, plain)
                meta = await self._describe(self._describe_request(*parts))
            except StoreUnavailable:
                raise
            except Exception:
                # A copy that cannot be read (a damaged blob, a bug) must not hold up
                # the others: it waits DEFER_SECONDS and is tried again.
                log.exception(
                    "copy cannot be prepared for delivery", extra={"entry": copy.entry_id}
                )
                broken.append(copy)
                continue
            prepared.append(_Prepared(copy, meta, sum(len(part) for part in parts)))
        return prepared, broken

    @staticmethod
    async def _defer(session: AsyncSession, entry_id: int) -> None:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=DEFER_SECONDS)
        await session.execute(
            update(DeliveryQueueEntry)
            .where(DeliveryQueueEntry.id == entry_id, DeliveryQueueEntry.state == "queued")
            .values(
                attempts=DeliveryQueueEntry.attempts + 1,
                next_attempt_at=later.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                last_error="copy could not be prepared (see the gateway log)",
                updated_at=utcnow(),
            )
        )

    async def _due_copies(self, session: AsyncSession, *, lock: bool = False) -> list[_Copy]:
        now = utcnow()
        query = (
            select(
                DeliveryQueueEntry.id,
                MessageCopy.id,
                MessageCopy.message_id,
                MessageCopy.recipient,
                MessageCopy.trace_code,
                Message.registry_number,
                MessageCopy.prefix_blob_id,
                Message.original_blob_id,
                MessageCopy.suffix_blob_id,
                Message.size,
                Message.sha256,
            )
            .join(MessageCopy, MessageCopy.id == DeliveryQueueEntry.copy_id)
            .join(Message, Message.id == MessageCopy.message_id)
            .where(
                DeliveryQueueEntry.target == LOCAL.column,
                DeliveryQueueEntry.state == "queued",
                DeliveryQueueEntry.next_attempt_at <= now,
            )
            .order_by(DeliveryQueueEntry.id)
            .limit(DELIVERY_BATCH)
        )
        if lock:
            query = skip_locked(query, session, DeliveryQueueEntry)
        rows = (await session.execute(query)).all()
        backlog = len(rows)
        if backlog == DELIVERY_BATCH:
            backlog = int(
                await session.scalar(
                    select(func.count())
                    .select_from(DeliveryQueueEntry)
                    .where(
                        DeliveryQueueEntry.target == LOCAL.column,
                        DeliveryQueueEntry.state == "queued",
                    )
                )
                or 0
            )
        metrics.DELIVERY_QUEUE_LAG.set(backlog)
        out: list[_Copy] = []
        total = 0
        for row in rows:
            total += int(row[9])
            if out and total > BATCH_BYTES:
                break
            out.append(
                _Copy(
                    entry_id=row[0],
                    copy_id=row[1],
                    message_id=row[2],
                    recipient=row[3],
                    trace_code=row[4],
                    registry=row[5],
                    blob_ids=(row[6], row[7], row[8]),
                    size=int(row[9]),
                    message_sha256=row[10],
                )
            )
        return out

    @staticmethod
    async def _blob_rows(session: AsyncSession, copies: list[_Copy]) -> dict[str, Blob]:
        """The stored blobs of a batch of copies, in one read."""
        wanted = sorted({blob_id for copy in copies for blob_id in copy.blob_ids})
        if not wanted:
            return {}
        found = await session.scalars(select(Blob).where(Blob.id.in_(wanted)))
        return {blob.id: blob for blob in found.all()}

    def _copy_parts(
        self, copy: _Copy, blobs: dict[str, Blob], plain: dict[str, bytes]
    ) -> tuple[bytes, bytes, bytes]:
        """(prefix, original, suffix) of a copy, decrypted (KeyError: a blob is missing)."""
        for blob_id in copy.blob_ids:
            if blob_id not in plain:
                plain[blob_id] = open_blob(self._cipher, blobs[blob_id])
        prefix, original, suffix = (plain[blob_id] for blob_id in copy.blob_ids)
        return prefix, original, suffix

    def _describe_request(self, prefix: bytes, original: bytes, suffix: bytes) -> bytes:
        """What the parse process gets for a copy: the parts apart when its function
        describes copies (the original parsed once per message), else the whole mail."""
        if self._copy_requests:
            return copy_request(prefix, original, suffix)
        return prefix + original + suffix

    async def _deliver_batch(self, scope: WriteScope, prepared: list[_Prepared]) -> list[str]:
        """Store the prepared copies in one transaction; an outcome ("delivered" or
        "failed") per copy this transaction claimed (others were another worker's)."""
        session = scope.session
        now = utcnow()
        if not prepared:
            return []
        addresses = {item.copy.recipient for item in prepared}
        employees = {
            address: (employee_id, status)
            for address, employee_id, status in (
                await session.execute(
                    select(Employee.address, Employee.id, Employee.status).where(
                        Employee.address.in_(addresses)
                    )
                )
            ).all()
        }
        deliverable: list[tuple[_Prepared, int]] = []
        failing: list[tuple[_Prepared, str]] = []
        for item in prepared:
            found = employees.get(item.copy.recipient)
            if found is None:
                failing.append((item, "unknown-recipient"))
            elif found[1] != EmployeeStatus.ACTIVE.value:
                failing.append((item, "recipient-suspended"))
            else:
                deliverable.append((item, found[0]))
        claimed = await _claim(
            session, [item.copy.entry_id for item, _ in deliverable], now, delivered=True
        )
        many = await self._many.among(session, {item.copy.message_id for item, _ in deliverable})
        jobs: list[dict[str, object]] = []
        events: list[audit.Event] = []
        outcomes: list[str] = []
        folders = await ensure_folders_many(
            session, {e for item, e in deliverable if item.copy.entry_id in claimed}
        )
        filed: list[NewCopy] = []
        for item, employee_id in deliverable:
            copy = item.copy
            if copy.entry_id not in claimed:
                continue  # another worker delivered it
            inbox = folders[employee_id][INBOX]
            filed.append(
                NewCopy(inbox, item.meta, copy.blob_ids, item.size, copy.message_id, copy.copy_id)
            )
            jobs.append(self._delivery_job(copy, now, copy.message_id in many))
            events.append(self._event("message.deliver", copy, {"mailbox": INBOX}))
            outcomes.append("delivered")
        await file_copies_in(scope, self._cipher, filed)  # a few statements for the batch
        for item, reason in failing:
            copy = item.copy
            if not await _claim(session, [copy.entry_id], now, delivered=False, error=reason):
                continue
            jobs.append(_receipt_job(copy.message_id, "non-delivery", copy.recipient, now, reason))
            events.append(self._event("message.undeliverable", copy, {"reason": reason}))
            outcomes.append("failed")
        if jobs:
            await session.execute(insert(ReceiptJob), jobs)
        await audit.append_many(session, self._audit_key, events)
        return outcomes

    def _delivery_job(self, copy: _Copy, now: str, summarised: bool) -> dict[str, object]:
        """The delivery receipt owed; for a summarised message, its signed evidence
        instead (done at once: gateway.delivery.evidence)."""
        job = _receipt_job(copy.message_id, "delivery", copy.recipient, now)
        signer = self._summaries.signer
        if summarised and signer is not None:
            signed = statement(copy.registry, copy.message_sha256, copy.recipient, now)
            job.update(state="done", done_at=now, evidence=signer.sign(signed))
        return job

    @staticmethod
    def _event(action: str, copy: _Copy, details: dict[str, object]) -> audit.Event:
        return audit.Event(
            actor="gateway",
            action=action,
            target=copy.registry,
            details={"recipient": copy.recipient, "trace": copy.trace_code, **details},
        )

    # ---- receipts ----------------------------------------------------------------------------

    async def write_receipts(self) -> int:
        """Render and file pending receipt jobs (gateway.delivery.receipt_writer)."""
        return await self._receipts.write_receipts()


async def _claim(
    session: AsyncSession,
    entry_ids: list[int],
    now: str,
    *,
    delivered: bool,
    error: str | None = None,
) -> set[int]:
    """Take queued entries for this transaction: the ids this update changed (the
    others are no longer queued: another worker has them)."""
    if not entry_ids:
        return set()
    values: dict[str, object] = {
        "state": "delivered" if delivered else "failed",
        "updated_at": now,
        "last_error": error,
        "attempts": DeliveryQueueEntry.attempts + 1,
    }
    if delivered:
        values["delivered_at"] = now
    result = await session.execute(
        update(DeliveryQueueEntry)
        .where(DeliveryQueueEntry.id.in_(entry_ids), DeliveryQueueEntry.state == "queued")
        .values(**values)
        .returning(DeliveryQueueEntry.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars().all())


def _receipt_job(
    message_id: int, kind: str, recipient: str, now: str, reason: str | None = None
) -> dict[str, object]:
    return {
        "message_id": message_id,
        "kind": kind,
        "recipient": recipient,
        "reason": reason,
        "detail": None,
        "state": "pending",
        "event_at": now,
        "done_at": None,
        "evidence": None,
    }
