"""Durable acceptance of official messages: registry numbers, encrypted bytes, queue, audit.

Owns: the one transaction that turns a checked `Submission` into stored rows,
and reading them back. Must not: build message bytes (the caller's `stamp` does),
decide policy, format SMTP replies, or log message content.

Contract of `MessageStore.accept`: look up the sender (agency by code, employee
by address; cached) -> queue the job for the store's writer task, which, in ONE
transaction for every job waiting (group commit): allocates the next registry
serials of (agency, year of the issue time) -> calls each job's
`stamp(registry, issued_at)` -> inserts the encrypted originals, the messages,
their documents, per copy the encrypted prefix/suffix and the copy row, one
`delivery_queue` entry per recipient, one pending acceptance `receipt_jobs` row
and one "message.accept" audit event per message -> commits -> calls
`on_accepted` (if set; it wakes the mail worker). `accept` returns only after
that commit, so a caller may say `250` as soon as it returns. On any failure everything rolls
back and no serial is consumed (a job whose stamp fails is taken out of its group
and the rest are written again): database trouble raises `StoreUnavailable`
(reply 451 4.3.0; its text is safe to show); a sender missing from the directory
raises `UnknownSender` (also 451: the checks will refuse it on retry); an
exception raised by `stamp`, or a stamp inconsistent with the submission
(`ValueError`), propagates unchanged.

Registry serials are gap-free per (agency, year) across gateway nodes: the
counter row is created or advanced by one INSERT ... ON CONFLICT DO UPDATE ...
RETURNING, which holds its row lock (PostgreSQL) or the database write lock
(SQLite, BEGIN IMMEDIATE) until commit; a rollback returns the serials.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
import unicodedata
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.model.message import Accepted, Recipient, Stamp, Submission
from gateway.store import audit
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher, read_blob, seal_blob
from gateway.store.db import sqlite_write_lock, transaction, utcnow
from gateway.store.models import (
    Agency,
    Blob,
    DeliveryQueueEntry,
    Employee,
    Message,
    MessageCopy,
    MessageDocument,
    ReceiptJob,
    RegistryCounter,
)
from keys.gateway_keys import derive_key
from policies.directory import Clearance

log = logging.getLogger("barid.store")

SERIAL_DIGITS = 6
TARGET_LOCAL = "local"
PEER_TARGET_PREFIX = "peer:"
IMAP_TARGET_PREFIX = "imap:"
PURPOSE_ORIGINAL = "original"
PURPOSE_PREFIX = "copy-prefix"
PURPOSE_SUFFIX = "copy-suffix"

StampFunction = Callable[[str, dt.datetime], Stamp]


SENDER_CACHE_SIZE = 100_000


class StoreError(Exception):
    """A store operation that did not happen; the message is safe to show a client."""


class StoreUnavailable(StoreError):
    """The database could not complete the operation; nothing was stored. Reply 451 4.3.0."""

    def __init__(self) -> None:
        super().__init__("message store temporarily unavailable")


class UnknownSender(StoreError):
    """The sender's agency or employee is not (or no longer) in the directory."""


class UnknownMessage(StoreError):
    """No message or copy with that id."""


class AlreadyRevoked(StoreError):
    """The message was revoked before; `revoked_at` says when."""

    def __init__(self, registry: str, revoked_at: str | None) -> None:
        super().__init__(f"{registry} was already revoked at {revoked_at or 'an unknown time'}")
        self.registry = registry
        self.revoked_at = revoked_at


MAX_REVOKE_REASON = 500  # characters


def check_revoke_reason(reason: str) -> str:
    """The reason, stripped; ValueError unless it is one non-empty line of at most
    MAX_REVOKE_REASON characters without control characters."""
    text = reason.strip()
    if not text:
        raise ValueError("a reason is required")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
        raise ValueError("the reason must be one line without control characters")
    if len(text) > MAX_REVOKE_REASON:
        raise ValueError(f"the reason is {len(text)} characters; at most {MAX_REVOKE_REASON}")
    return text


MAX_GROUP = 64  # acceptances committed together at most
# The same bytes from the same sender within this window are a client's retry
# (a Message-ID and a Date make two real messages differ).
RESUBMISSION_WINDOW = dt.timedelta(hours=24)
CLOSE_GRACE_SECONDS = 10.0


@dataclass
class _Job:
    """One queued acceptance, settled through `future` by the writer task."""

    submission: Submission
    stamp: StampFunction
    actor: str
    original: Blob
    original_sha: str
    agency_id: int
    employee_id: int
    by_address: dict[str, Recipient]
    future: asyncio.Future[Accepted]


class _JobFailed(Exception):
    """One job's stamp failed (or was inconsistent); carries its error out of the group."""

    def __init__(self, job: _Job, error: BaseException) -> None:
        super().__init__("stamp failed")
        self.job = job
        self.error = error


def _settle(
    job: _Job, *, result: Accepted | None = None, error: BaseException | None = None
) -> None:
    if job.future.done():
        return
    if error is not None:
        if isinstance(error, StoreUnavailable):
            error.__suppress_context__ = True  # no database text chained to it
        job.future.set_exception(error)
    else:
        assert result is not None
        job.future.set_result(result)


def _row(blob: Blob) -> dict[str, object]:
    return {column.key: getattr(blob, column.key) for column in Blob.__table__.columns}


def _recipient_of(jobs: Sequence[_Job], copy: dict[str, object]) -> Recipient:
    for job in jobs:
        recipient = job.by_address.get(str(copy["recipient"]))
        if recipient is not None:
            return recipient
    raise ValueError("copy without a recipient")  # pragma: no cover - built from by_address


@dataclass(frozen=True, slots=True)
class StoredDocument:
    name: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    registry: str
    agency: str
    sender_address: str
    classification: Clearance
    subject: str
    size: int
    sha256: str
    token: str
    key_id: str | None
    accepted_at: str
    status: str  # valid | revoked
    revoked_at: str | None
    revoked_reason: str | None
    client_address: str
    documents: tuple[StoredDocument, ...]


@dataclass(frozen=True, slots=True)
class StoredCopy:
    id: int
    message_id: int
    recipient: str
    local: bool
    peer: str | None
    trace_code: str
    target: str  # delivery target: "local", "imap:<server>" or "peer:<name>"


def format_registry(agency_code: str, year: int, serial: int) -> str:
    """`<AGENCY>/<YEAR>/<serial>`, the serial zero-padded to six digits (MOH/2026/000042)."""
    return f"{agency_code}/{year}/{serial:0{SERIAL_DIGITS}d}"


def iso(moment: dt.datetime) -> str:
    """The schema's timestamp text (as `db.utcnow`) for an aware datetime."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def delivery_target(recipient: Recipient) -> str:
    """ "local" (Barid's own INBOX), "imap:<server>" (the agency's own mail server) or
    "peer:<name>" (a federation peer's gateway)."""
    if recipient.local:
        return IMAP_TARGET_PREFIX + recipient.mailserver if recipient.mailserver else TARGET_LOCAL
    if not recipient.peer:
        raise ValueError(f"remote recipient {recipient.address} has no federation peer")
    return PEER_TARGET_PREFIX + recipient.peer


async def allocate_serial(session: AsyncSession, agency_id: int, year: int) -> int:
    """Take the next registry serial of (agency, year); see `allocate_serials`."""
    return await allocate_serials(session, agency_id, year, 1)


async def allocate_serials(session: AsyncSession, agency_id: int, year: int, count: int) -> int:
    """Take the next `count` registry serials of (agency, year); returns the first.

    The counter row stays locked until the transaction ends; a rollback returns
    the serial, so serials are gap-free. The first number of a year is 1.
    """
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # One statement: create the year's counter past the taken serials, or advance it.
    stmt = upsert(RegistryCounter).values(agency_id=agency_id, year=year, next_serial=count + 1)
    taken = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=["agency_id", "year"],
            set_={"next_serial": RegistryCounter.next_serial + count},
        ).returning(RegistryCounter.next_serial - count)
    )
    if taken is None:  # pragma: no cover - an upsert always returns its row
        raise RuntimeError("registry counter row missing")
    return int(taken)


def free_space_ok(path: str | os.PathLike[str], min_free_bytes: int) -> bool:
    """True when the filesystem holding `path` has at least `min_free_bytes` free for us.

    For the `452 4.3.1` reply. A path that cannot be examined counts as not ok,
    so a broken data directory refuses mail temporarily instead of losing it.
    """
    try:
        info = os.statvfs(Path(path))
    except OSError as exc:
        log.warning("cannot examine free space", extra={"errno": exc.errno})
        return False
    return info.f_bavail * info.f_frsize >= min_free_bytes


def _database_trouble(operation: str, exc: BaseException) -> StoreUnavailable:
    # Only class names and SQLSTATE reach the log: SQLAlchemy's text can hold
    # statement parameters (addresses, subjects, ciphertext).
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    log.error(
        "database unavailable",
        extra={
            "operation": operation,
            "error": type(exc).__name__,
            "driver_error": type(orig).__name__ if orig is not None else None,
            "sqlstate": getattr(orig, "sqlstate", None),
        },
    )
    return StoreUnavailable()


database_trouble = _database_trouble


_DATABASE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
# For the other stores (mailboxes, the access trail, delivery): the same rules.
DATABASE_ERRORS = _DATABASE_ERRORS


class MessageStore:
    """Accepts checked submissions durably and reads stored messages back.

    Every public coroutine is its own transaction (or read); see the module
    docstring for `accept`'s order and failure behaviour.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        master_key: bytes,
        audit_key: bytes,
    ) -> None:
        self._sessions = sessions
        self._cipher = BlobCipher(derive_key(master_key, BLOB_KEK_PURPOSE))
        self._audit_key = audit_key
        self._sender_cache: dict[tuple[str, str], tuple[int, int]] = {}
        self._pending: list[_Job] = []
        self._writer: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        # Shared by every writer of this process on SQLite; see db.sqlite_write_lock.
        self._write_lock = sqlite_write_lock(sessions)
        # Called (on the loop) after each commit of acceptances: wakes the mail worker.
        self.on_accepted: Callable[[], None] | None = None

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """One write transaction, queued behind this store's other writers on SQLite."""
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            yield await stack.enter_async_context(transaction(self._sessions))

    # ---- acceptance -----------------------------------------------------------

    async def accept(self, submission: Submission, stamp: StampFunction, *, actor: str) -> Accepted:
        """Store `submission` with its stamp durably; returns only after the commit.

        Acceptances are queued for one writer task per store, which commits every
        acceptance waiting at that moment in one transaction (group commit): one
        BEGIN IMMEDIATE / COMMIT and fsync, one multi-row insert per table and one
        audit-chain update for the whole group, instead of per message.
        """
        by_address = _recipients_by_address(submission)
        # Work that needs no database happens before the job is queued.
        original = seal_blob(self._cipher, submission.raw, purpose=PURPOSE_ORIGINAL)
        original_sha = hashlib.sha256(submission.raw).hexdigest()
        try:
            # Once per sender: an employee's row id and agency never change here.
            key = (submission.sender_agency.strip().upper(), submission.sender_address.lower())
            ids = self._sender_cache.get(key)
            if ids is None:
                async with self._sessions() as reader:
                    ids = await _sender_ids(reader, submission)
                if len(self._sender_cache) < SENDER_CACHE_SIZE:
                    self._sender_cache[key] = ids
            # A client that did not get our reply (a lost connection after the commit)
            # sends the very same bytes again: answer with the number already given.
            earlier = await self._already_accepted(submission, original_sha)
        except StoreError:
            raise
        except _DATABASE_ERRORS as exc:
            raise _database_trouble("accept", exc) from None
        if earlier is not None:
            log.info("resubmission of an accepted message", extra={"registry": earlier.registry})
            return earlier
        loop = asyncio.get_running_loop()
        job = _Job(
            submission=submission,
            stamp=stamp,
            actor=actor,
            original=original,
            original_sha=original_sha,
            agency_id=ids[0],
            employee_id=ids[1],
            by_address=by_address,
            future=loop.create_future(),
        )
        self._pending.append(job)
        if self._writer is None or self._writer.done():
            self._wakeup = asyncio.Event()
            self._writer = asyncio.create_task(self._write_forever(), name="barid-accept-writer")
        assert self._wakeup is not None
        self._wakeup.set()
        # Shielded: a client that goes away does not cancel a write under way.
        return await asyncio.shield(job.future)

    async def _already_accepted(self, submission: Submission, sha256: str) -> Accepted | None:
        """The acceptance of these exact bytes from this sender within RESUBMISSION_WINDOW."""
        since = iso(dt.datetime.now(dt.UTC) - RESUBMISSION_WINDOW)
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(Message.registry_number, Message.id, Message.token)
                    .where(
                        Message.sender_address == submission.sender_address.lower(),
                        Message.accepted_at >= since,
                        Message.sha256 == sha256,
                    )
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        return Accepted(registry=row[0], message_id=int(row[1]), token=row[2])

    async def close(self) -> None:
        """Let queued acceptances finish, then stop the writer task."""
        writer = self._writer
        if writer is None:
            return
        if self._pending and not writer.done():
            last = self._pending[-1].future
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                    await asyncio.wait([last])
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        self._writer = None

    async def _write_forever(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[:MAX_GROUP]
                del self._pending[:MAX_GROUP]
                await self._write_group(batch)

    async def _write_group(self, batch: list[_Job]) -> None:
        """Commit `batch`, settling every job's future; never raises (but cancellation)."""
        remaining = list(batch)
        try:
            while remaining:
                try:
                    async with self._writing() as session:
                        accepted = await self._insert_group(session, remaining)
                except _JobFailed as failed:
                    # One job's stamp failed: the group rolled back (no serial used);
                    # that job gets its error and the others are written again.
                    remaining.remove(failed.job)
                    _settle(failed.job, error=failed.error)
                    continue
                except _DATABASE_ERRORS as exc:
                    trouble = _database_trouble("accept", exc)
                    for job in remaining:
                        _settle(job, error=trouble)
                    return
                except Exception:
                    log.exception("acceptance group failed")
                    for job in remaining:
                        _settle(job, error=StoreUnavailable())
                    return
                for job, result in zip(remaining, accepted, strict=True):
                    _settle(job, result=result)
                if self.on_accepted is not None:
                    try:
                        self.on_accepted()
                    except Exception:
                        log.exception("acceptance hook failed")
                return
        except asyncio.CancelledError:
            for job in remaining:
                _settle(job, error=StoreUnavailable())
            raise

    async def _insert_group(self, session: AsyncSession, jobs: list[_Job]) -> list[Accepted]:
        # Whole seconds: the token carries the issue time to the second.
        issued_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        year = issued_at.year
        wanted: dict[int, int] = {}
        for job in jobs:
            wanted[job.agency_id] = wanted.get(job.agency_id, 0) + 1
        next_serial = {
            agency_id: await allocate_serials(session, agency_id, year, count)
            for agency_id, count in wanted.items()
        }
        accepted_at = iso(issued_at)
        blobs: list[dict[str, object]] = []
        messages: list[dict[str, object]] = []
        stamps: list[Stamp] = []
        copy_blobs: list[list[tuple[str, str]]] = []
        for job in jobs:
            serial = next_serial[job.agency_id]
            next_serial[job.agency_id] = serial + 1
            registry = format_registry(job.submission.sender_agency.strip().upper(), year, serial)
            try:
                stamped = job.stamp(registry, issued_at)
                _check_stamp(stamped, registry, issued_at, job.by_address)
            except Exception as exc:
                raise _JobFailed(job, exc) from exc
            stamps.append(stamped)
            blobs.append(_row(job.original))
            pairs = []
            for copy in stamped.copies:
                prefix = seal_blob(self._cipher, copy.prefix, purpose=PURPOSE_PREFIX)
                suffix = seal_blob(self._cipher, copy.suffix, purpose=PURPOSE_SUFFIX)
                blobs += [_row(prefix), _row(suffix)]
                pairs.append((prefix.id, suffix.id))
            copy_blobs.append(pairs)
            submission = job.submission
            messages.append(
                {
                    "registry_number": stamped.registry,
                    "agency_id": job.agency_id,
                    "sender_employee_id": job.employee_id,
                    "sender_address": submission.sender_address.lower(),
                    "classification": int(submission.classification),
                    "subject": submission.subject,
                    "size": len(submission.raw),
                    "sha256": job.original_sha,
                    "original_blob_id": job.original.id,
                    "token": stamped.token,
                    "key_id": _key_id(stamped),
                    "accepted_at": accepted_at,
                    "status": "valid",
                    "client_address": submission.client_address,
                }
            )
        await session.execute(insert(Blob), blobs)
        message_ids = list(
            (
                await session.execute(
                    insert(Message).returning(Message.id, sort_by_parameter_order=True), messages
                )
            ).scalars()
        )
        documents: list[dict[str, object]] = []
        copies: list[dict[str, object]] = []
        for job, stamped, message_id, pairs in zip(
            jobs, stamps, message_ids, copy_blobs, strict=True
        ):
            documents += [
                {
                    "message_id": message_id,
                    "position": position,
                    "name": document.name,
                    "content_type": document.content_type,
                    "size": len(document.data),
                    "sha256": document.sha256.lower(),
                }
                for position, document in enumerate(job.submission.documents)
            ]
            for copy, (prefix_id, suffix_id) in zip(stamped.copies, pairs, strict=True):
                recipient = job.by_address[copy.recipient.lower()]
                copies.append(
                    {
                        "message_id": message_id,
                        "recipient": copy.recipient.lower(),
                        "recipient_local": recipient.local,
                        "peer": recipient.peer,
                        "trace_code": copy.trace_code,
                        "prefix_blob_id": prefix_id,
                        "suffix_blob_id": suffix_id,
                    }
                )
        if documents:
            await session.execute(insert(MessageDocument), documents)
        copy_ids = list(
            (
                await session.execute(
                    insert(MessageCopy).returning(MessageCopy.id, sort_by_parameter_order=True),
                    copies,
                )
            ).scalars()
        )
        await session.execute(
            insert(DeliveryQueueEntry),
            [
                {
                    "copy_id": copy_id,
                    "target": delivery_target(_recipient_of(jobs, copies[i])),
                    "state": "queued",
                    "attempts": 0,
                    "next_attempt_at": accepted_at,
                    "created_at": accepted_at,
                    "updated_at": accepted_at,
                }
                for i, copy_id in enumerate(copy_ids)
            ],
        )
        # The acceptance receipt (and the sender's Sent copy) is owed from this commit on.
        await session.execute(
            insert(ReceiptJob),
            [
                {
                    "message_id": message_id,
                    "kind": "acceptance",
                    "recipient": "",
                    "state": "pending",
                    "event_at": accepted_at,
                }
                for message_id in message_ids
            ],
        )
        await audit.append_many(
            session,
            self._audit_key,
            [
                audit.Event(
                    actor=job.actor,
                    action="message.accept",
                    target=stamped.registry,
                    details={
                        "sender": job.submission.sender_address.lower(),
                        "recipients": len(job.submission.recipients),
                        "classification": job.submission.classification.label,
                        "documents": [d.sha256.lower() for d in job.submission.documents],
                    },
                )
                for job, stamped in zip(jobs, stamps, strict=True)
            ],
        )
        return [
            Accepted(registry=stamped.registry, message_id=message_id, token=stamped.token)
            for stamped, message_id in zip(stamps, message_ids, strict=True)
        ]

    async def record_rejection(
        self,
        *,
        actor: str,
        sender: str,
        reason: str,
        rule: str | None = None,
        recipients: Sequence[str] = (),
        client_address: str = "",
    ) -> None:
        """Audit a refused submission ("message.reject", outcome "refused"), in its own
        transaction. `reason` is a short code (e.g. "policy", "unsigned"), `rule` the
        policy rule id if one decided. StoreUnavailable on database trouble."""
        try:
            async with self._writing() as session:
                await audit.append(
                    session,
                    self._audit_key,
                    actor=actor,
                    action="message.reject",
                    target=sender.lower(),
                    outcome="refused",
                    details={
                        "reason": reason,
                        "rule": rule,
                        "recipients": [r.lower() for r in recipients],
                        "client": client_address,
                    },
                )
        except _DATABASE_ERRORS as exc:
            raise _database_trouble("record_rejection", exc) from None

    # ---- revocation -----------------------------------------------------------

    async def revoke(self, registry: str, reason: str, *, actor: str) -> StoredMessage:
        """Mark the message revoked, with the time and reason, and audit it
        ("message.revoke", target the registry number, the reason in details), in one
        transaction. ValueError for a bad reason (see `check_revoke_reason`),
        UnknownMessage, AlreadyRevoked, StoreUnavailable."""
        text = check_revoke_reason(reason)
        registry = registry.strip()
        try:
            async with self._writing() as session:
                at = utcnow()
                # Conditional: of two concurrent revocations exactly one wins.
                changed = await session.scalar(
                    update(Message)
                    .where(Message.registry_number == registry, Message.status == "valid")
                    .values(status="revoked", revoked_at=at, revoked_reason=text)
                    .returning(Message.id)
                )
                if changed is None:
                    row = (
                        await session.execute(
                            select(Message.status, Message.revoked_at).where(
                                Message.registry_number == registry
                            )
                        )
                    ).first()
                    if row is None:
                        raise UnknownMessage(f"no official message with registry number {registry}")
                    raise AlreadyRevoked(registry, row[1])
                await audit.append(
                    session,
                    self._audit_key,
                    actor=actor,
                    action="message.revoke",
                    target=registry,
                    details={"reason": text, "revoked_at": at},
                )
        except _DATABASE_ERRORS as exc:
            raise _database_trouble("revoke", exc) from None
        stored = await self.message_by_registry(registry)
        if stored is None:  # pragma: no cover - just committed
            raise UnknownMessage(f"no official message with registry number {registry}")
        return stored

    # ---- readers --------------------------------------------------------------

    async def load_original(self, message_id: int) -> bytes:
        """The original message exactly as received. UnknownMessage, BlobIntegrityError."""
        try:
            async with self._sessions() as session:
                blob_id = await session.scalar(
                    select(Message.original_blob_id).where(Message.id == message_id)
                )
                if blob_id is None:
                    raise UnknownMessage(f"message {message_id} not found")
                return await read_blob(session, self._cipher, blob_id)
        except _DATABASE_ERRORS as exc:
            raise _database_trouble("load_original", exc) from None

    async def load_copy(self, copy_id: int) -> bytes:
        """One recipient's copy: prefix + original + suffix. UnknownMessage, BlobIntegrityError."""
        try:
            async with self._sessions() as session:
                row = (
                    await session.execute(
                        select(
                            MessageCopy.prefix_blob_id,
                            MessageCopy.suffix_blob_id,
                            Message.original_blob_id,
                        )
                        .join(Message, Message.id == MessageCopy.message_id)
                        .where(MessageCopy.id == copy_id)
                    )
                ).first()
                if row is None:
                    raise UnknownMessage(f"copy {copy_id} not found")
                prefix = await read_blob(session, self._cipher, row[0])
                suffix = await read_blob(session, self._cipher, row[1])
                original = await read_blob(session, self._cipher, row[2])
                return prefix + original + suffix
        except _DATABASE_ERRORS as exc:
            raise _database_trouble("load_copy", exc) from None

    async def copies_for(self, message_id: int) -> list[StoredCopy]:
        """The message's copies in insertion (recipient) order; empty if none."""
        try:
            async with self._sessions() as session:
                rows = (
                    await session.execute(
                        select(MessageCopy, DeliveryQueueEntry.target)
                        .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
                        .where(MessageCopy.message_id == message_id)
                        .order_by(MessageCopy.id)
                    )
                ).all()
        except _DATABASE_ERRORS as exc:
            raise _database_trouble("copies_for", exc) from None
        return [
            StoredCopy(
                id=copy.id,
                message_id=copy.message_id,
                recipient=copy.recipient,
                local=copy.recipient_local,
                peer=copy.peer,
                trace_code=copy.trace_code,
                target=target,
            )
            for copy, target in rows
        ]

    async def message_by_registry(self, registry: str) -> StoredMessage | None:
        """The message with that registry number (exact match), or None."""
        try:
            async with self._sessions() as session:
                row = (
                    await session.execute(
                        select(Message, Agency.code)
                        .join(Agency, Agency.id == Message.agency_id)
                        .where(Message.registry_number == registry.strip())
                    )
                ).first()
                if row is None:
                    return None
                message, agency_code = row
                documents = (
                    await session.scalars(
                        select(MessageDocument)
                        .where(MessageDocument.message_id == message.id)
                        .order_by(MessageDocument.position)
                    )
                ).all()
        except _DATABASE_ERRORS as exc:
            raise _database_trouble("message_by_registry", exc) from None
        return StoredMessage(
            id=message.id,
            registry=message.registry_number,
            agency=agency_code,
            sender_address=message.sender_address,
            classification=Clearance(message.classification),
            subject=message.subject,
            size=message.size,
            sha256=message.sha256,
            token=message.token,
            key_id=message.key_id,
            accepted_at=message.accepted_at,
            status=message.status,
            revoked_at=message.revoked_at,
            revoked_reason=message.revoked_reason,
            client_address=message.client_address,
            documents=tuple(
                StoredDocument(d.name, d.content_type, d.size, d.sha256) for d in documents
            ),
        )


# ---- helpers -------------------------------------------------------------------


async def _sender_ids(session: AsyncSession, submission: Submission) -> tuple[int, int]:
    """(agency id, employee id) of the sender; the employee must belong to that agency."""
    row = (
        await session.execute(
            select(Agency.id, Employee.id)
            .join(Employee, Employee.agency_id == Agency.id)
            .where(
                Agency.code == submission.sender_agency.strip().upper(),
                Employee.address == submission.sender_address.strip().lower(),
            )
        )
    ).first()
    if row is None:
        raise UnknownSender("sender is not in the directory")
    return int(row[0]), int(row[1])


def _recipients_by_address(submission: Submission) -> dict[str, Recipient]:
    if not submission.recipients:
        raise ValueError("a submission needs at least one recipient")
    found: dict[str, Recipient] = {}
    for recipient in submission.recipients:
        address = recipient.address.lower()
        if address in found:
            raise ValueError(f"recipient {address} is listed twice")
        delivery_target(recipient)  # refuses a remote recipient without a peer
        found[address] = recipient
    return found


def _check_stamp(
    stamped: Stamp, registry: str, issued_at: dt.datetime, by_address: dict[str, Recipient]
) -> None:
    if stamped.registry != registry or stamped.issued_at != issued_at:
        raise ValueError("the stamp carries another registry number or issue time")
    addresses = [copy.recipient.lower() for copy in stamped.copies]
    if sorted(addresses) != sorted(by_address):
        raise ValueError("the stamp's copies do not match the recipients one to one")


def _key_id(stamped: Stamp) -> str | None:
    # `Stamp` does not carry the signing key id yet; take it from an attribute or
    # the certificate when present.
    value = getattr(stamped, "key_id", None) or stamped.certificate.get("key_id")
    return str(value) if value else None
