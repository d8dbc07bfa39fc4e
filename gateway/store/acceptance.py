"""Durable acceptance of official messages: the group-commit writer.

Owns: the one transaction that turns checked `Submission`s into stored rows.
Must not: build message bytes (the caller's `stamp` does), decide policy or the
delivery target (gateway.model.target does), format SMTP replies, or log message content.

Contract of `AcceptanceWriter.accept`: look up the sender (agency by code,
employee by address; cached) -> queue the job for the writer task, which, in ONE
transaction for every job waiting (group commit): allocates the next registry
serials of (agency, year of the issue time) -> calls each job's
`stamp(registry, issued_at)` -> inserts the encrypted originals, the messages,
their documents, per copy the encrypted prefix/suffix and the copy row, one
`delivery_queue` entry per recipient (its target chosen once, at `accept`), one
pending acceptance `receipt_jobs` row and one "message.accept" audit event per
message -> commits -> calls `on_accepted` (if set; it wakes the mail worker).
`accept` returns only after that commit, so a caller may say `250` as soon as it
returns. On any failure everything rolls back and no serial is consumed (a job
whose stamp fails is taken out of its group and the rest are written again):
database trouble raises `StoreUnavailable` (reply 451 4.3.0; its text is safe to
show); a sender missing from the directory raises `UnknownSender` (also 451: the
checks will refuse it on retry); an exception raised by `stamp`, or a stamp
inconsistent with the submission (`ValueError`), propagates unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.model.message import Accepted, Recipient, Stamp, Submission
from gateway.model.target import DeliveryTarget, target_for
from gateway.store import acceptance_rows as rows
from gateway.store.blobs import BlobCipher, seal_blob, store_outside
from gateway.store.db import iso, writing
from gateway.store.errors import (
    DATABASE_ERRORS,
    StoreError,
    StoreUnavailable,
    UnknownSender,
    database_trouble,
)
from gateway.store.models import Agency, Employee, Message
from gateway.store.registry import allocate_serials, format_registry

log = logging.getLogger("barid.store")

StampFunction = Callable[[str, dt.datetime], Stamp]

SENDER_CACHE_SIZE = 100_000
MAX_GROUP = 64  # acceptances committed together at most
# The same bytes from the same sender within this window are a client's retry
# (a Message-ID and a Date make two real messages differ).
RESUBMISSION_WINDOW = dt.timedelta(hours=24)
CLOSE_GRACE_SECONDS = 10.0


@dataclass
class _Job:
    """One queued acceptance, settled through `future` by the writer task."""

    facts: rows.Facts
    stamp: StampFunction
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


class AcceptanceWriter:
    """Queues acceptances and commits them in groups from one writer task."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cipher: BlobCipher, audit_key: bytes
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._audit_key = audit_key
        self._sender_cache: dict[tuple[str, str], tuple[int, int]] = {}
        self._pending: list[_Job] = []
        self._writer: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        # Called (on the loop) after each commit of acceptances: wakes the mail worker.
        self.on_accepted: Callable[[], None] | None = None

    async def accept(self, submission: Submission, stamp: StampFunction, *, actor: str) -> Accepted:
        """Store `submission` with its stamp durably; returns only after the commit.

        Acceptances are queued for one writer task per store, which commits every
        acceptance waiting at that moment in one transaction (group commit): one
        BEGIN IMMEDIATE / COMMIT and fsync, one multi-row insert per table and one
        audit-chain update for the whole group, instead of per message.
        """
        by_address, targets = _routes(submission)
        # Work that needs no database happens before the job is queued.
        sealed = rows.Sealed(
            seal_blob(self._cipher, submission.raw, purpose=rows.PURPOSE_ORIGINAL),
            hashlib.sha256(submission.raw).hexdigest(),
        )
        # Written (and checked) before the commit that will reference it; a store
        # outage raises BlobUnavailable, a StoreUnavailable (451 4.3.0).
        await store_outside(self._cipher, [sealed.original])
        try:
            ids = await self._sender_ids(submission)
            # A client that did not get our reply (a lost connection after the commit)
            # sends the very same bytes again: answer with the number already given.
            earlier = await self._already_accepted(submission, sealed.sha256)
        except StoreError:
            raise
        except DATABASE_ERRORS as exc:
            raise database_trouble("accept", exc) from None
        if earlier is not None:
            log.info("resubmission of an accepted message", extra={"registry": earlier.registry})
            return earlier
        facts = rows.Facts(submission, actor, sealed, ids[0], ids[1], by_address, targets)
        job = _Job(facts, stamp, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        if self._writer is None or self._writer.done():
            self._wakeup = asyncio.Event()
            self._writer = asyncio.create_task(self._write_forever(), name="barid-accept-writer")
        assert self._wakeup is not None
        self._wakeup.set()
        # Shielded: a client that goes away does not cancel a write under way.
        return await asyncio.shield(job.future)

    async def _sender_ids(self, submission: Submission) -> tuple[int, int]:
        """(agency id, employee id) of the sender, read once per sender: an
        employee's row id and agency never change here."""
        key = (submission.sender_agency.strip().upper(), submission.sender_address.lower())
        ids = self._sender_cache.get(key)
        if ids is None:
            async with self._sessions() as reader:
                ids = await _sender_ids(reader, submission)
            if len(self._sender_cache) < SENDER_CACHE_SIZE:
                self._sender_cache[key] = ids
        return ids

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
                    async with writing(self._sessions) as session:
                        accepted = await self._insert_group(session, remaining)
                except _JobFailed as failed:
                    # One job's stamp failed: the group rolled back (no serial used);
                    # that job gets its error and the others are written again.
                    remaining.remove(failed.job)
                    _settle(failed.job, error=failed.error)
                    continue
                except DATABASE_ERRORS as exc:
                    trouble = database_trouble("accept", exc)
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
                self._accepted()
                return
        except asyncio.CancelledError:
            for job in remaining:
                _settle(job, error=StoreUnavailable())
            raise

    def _accepted(self) -> None:
        if self.on_accepted is not None:
            try:
                self.on_accepted()
            except Exception:
                log.exception("acceptance hook failed")

    async def _insert_group(self, session: AsyncSession, jobs: list[_Job]) -> list[Accepted]:
        """Every row of the group's acceptances, in the caller's transaction."""
        # Whole seconds: the token carries the issue time to the second.
        issued_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        stamps = await _stamp_all(session, jobs, issued_at)
        group = [(job.facts, stamped) for job, stamped in zip(jobs, stamps, strict=True)]
        return await rows.insert_group(session, self._cipher, self._audit_key, group, issued_at)


async def _stamp_all(
    session: AsyncSession, jobs: list[_Job], issued_at: dt.datetime
) -> list[Stamp]:
    """Each job's stamp under its newly allocated registry number; `_JobFailed` for
    the first job whose stamp fails or does not match its submission."""
    year = issued_at.year
    wanted: dict[int, int] = {}
    for job in jobs:
        wanted[job.facts.agency_id] = wanted.get(job.facts.agency_id, 0) + 1
    next_serial = {
        agency_id: await allocate_serials(session, agency_id, year, count)
        for agency_id, count in wanted.items()
    }
    stamps: list[Stamp] = []
    for job in jobs:
        facts = job.facts
        serial = next_serial[facts.agency_id]
        next_serial[facts.agency_id] = serial + 1
        registry = format_registry(facts.submission.sender_agency.strip().upper(), year, serial)
        try:
            stamped = job.stamp(registry, issued_at)
            _check_stamp(stamped, registry, issued_at, facts.by_address)
        except Exception as exc:
            raise _JobFailed(job, exc) from exc
        stamps.append(stamped)
    return stamps


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


def _routes(
    submission: Submission,
) -> tuple[dict[str, Recipient], dict[str, DeliveryTarget]]:
    """The recipients by address and the delivery target of each, chosen here once;
    ValueError for no recipient, a recipient listed twice or a remote one without a peer."""
    if not submission.recipients:
        raise ValueError("a submission needs at least one recipient")
    found: dict[str, Recipient] = {}
    targets: dict[str, DeliveryTarget] = {}
    for recipient in submission.recipients:
        address = recipient.address.lower()
        if address in found:
            raise ValueError(f"recipient {address} is listed twice")
        targets[address] = target_for(recipient)
        found[address] = recipient
    return found, targets


def _check_stamp(
    stamped: Stamp, registry: str, issued_at: dt.datetime, by_address: dict[str, Recipient]
) -> None:
    if stamped.registry != registry or stamped.issued_at != issued_at:
        raise ValueError("the stamp carries another registry number or issue time")
    addresses = [copy.recipient.lower() for copy in stamped.copies]
    if sorted(addresses) != sorted(by_address):
        raise ValueError("the stamp's copies do not match the recipients one to one")
