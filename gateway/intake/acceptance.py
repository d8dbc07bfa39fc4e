"""The end-of-data pipeline: gather facts, check, stamp and store, reply.

Owns: the I/O around `checks.check_message` — disk space (452 4.3.1), the
sender's signing material and recent sending count, running the checks in a
worker thread or a check process (gateway.checks.pool: heavy parsing and
crypto stay off the event loop), durable
acceptance with stamping inside the transaction, audit of refusals, metrics
(audit-mode policy hits counted here, audited with the acceptance or refusal),
and mapping storage trouble to 451 4.3.0. Must not: acknowledge anything
before `MessageStore.accept` has committed; never show exception text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.checks.facts import Inputs
from gateway.checks.pool import Result, thread_checks
from gateway.intake.submission import Identity
from gateway.mime.limits import MimeLimits
from gateway.mime.verdicts import Verdict
from gateway.model import replies
from gateway.model.message import PolicyAuditHit
from gateway.stamping.stamper import Stamper
from gateway.store.db import iso
from gateway.store.directory import Directory, DirectoryError, SigningMaterial
from gateway.store.disk import free_space_ok
from gateway.store.errors import StoreError
from gateway.store.messages import MessageStore
from gateway.store.models import Message
from keys.signatures import OpenPgpBackend
from policies.directory import EmployeeStatus
from policies.holder import PolicyHolder

log = logging.getLogger("barid.submission")

RATE_WINDOW = dt.timedelta(hours=1)
MATERIAL_CACHE_SIZE = 10_000


class SubmissionPipeline:
    def __init__(
        self,
        *,
        directory: Directory,
        sessions: async_sessionmaker[AsyncSession],
        policy: Callable[[], PolicyHolder],
        store: MessageStore,
        stamper: Stamper,
        federation: Mapping[str, Sequence[str]],
        limits: MimeLimits,
        data_dir: Path,
        min_free_bytes: int,
        openpgp_backend: OpenPgpBackend = "sequoia",
        directory_version: Callable[[], int] = lambda: -1,
        mailservers: Mapping[str, str] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        checks: Callable[[Inputs], Awaitable[Result]] = thread_checks,
    ) -> None:
        self._directory = directory
        self._sessions = sessions
        self._policy = policy
        self._store = store
        self._stamper = stamper
        self.stamper = stamper
        self._federation = {k: tuple(v) for k, v in federation.items()}
        self._mailservers = dict(mailservers or {})
        self._limits = limits
        self._data_dir = data_dir
        self._min_free = min_free_bytes
        self._openpgp_backend: OpenPgpBackend = openpgp_backend
        self._directory_version = directory_version
        self._material: dict[str, tuple[int, SigningMaterial]] = {}
        self._clock = clock
        self._checks = checks

    async def _signing_material(self, address: str) -> SigningMaterial:
        """The sender's identities and CAs, cached until the directory changes."""
        version = self._directory_version()
        cached = self._material.get(address)
        if cached is not None and cached[0] == version:
            return cached[1]
        material = await self._directory.signing_material(address)
        if len(self._material) >= MATERIAL_CACHE_SIZE:
            self._material.clear()
        self._material[address] = (version, material)
        return material

    async def sent_last_hour(self, address: str) -> int:
        """Messages `address` had accepted in the last hour (the policy's rate fact)."""
        since = iso(self._clock() - RATE_WINDOW)
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.sender_address == address, Message.accepted_at >= since)
            )
        return int(count or 0)

    async def process(
        self,
        identity: Identity,
        peer: str,
        mail_from: str,
        recipients: list[str],
        raw: bytes,
        sent_last_hour: int,
    ) -> str:
        started = time.perf_counter()
        outcome, reason, line = await self._process(identity, peer, recipients, raw, sent_last_hour)
        metrics.SUBMISSIONS.labels(outcome, reason).inc()
        metrics.SUBMISSION_SECONDS.labels(outcome).observe(time.perf_counter() - started)
        return line

    async def _process(
        self, identity: Identity, peer: str, recipients: list[str], raw: bytes, sent: int
    ) -> tuple[str, str, str]:
        if not await asyncio.to_thread(free_space_ok, self._data_dir, self._min_free):
            log.error("refusing mail: disk nearly full", extra={"data_dir": str(self._data_dir)})
            return "deferred", "disk", replies.DISK_FULL
        holder = self._policy()
        snapshot = holder.snapshot
        sender = snapshot.employee(identity.address)
        if sender is None or sender.status is not EmployeeStatus.ACTIVE:
            return "rejected", "sender", replies.reply(550, "5.7.1", "Sender may not submit")
        agency = snapshot.agencies[sender.agency]
        try:
            material = await self._signing_material(sender.address)
        except DirectoryError:
            return "rejected", "sender", replies.reply(550, "5.7.1", "Sender may not submit")
        except Exception:
            log.warning("database unavailable before the checks", exc_info=True)
            return "deferred", "storage", replies.STORAGE_UNAVAILABLE
        inputs = Inputs(
            raw=raw,
            sender=sender,
            agency=agency,
            material=material,
            recipients=tuple(recipients),
            snapshot=snapshot,
            policy=holder.policy,
            federation=self._federation,
            limits=self._limits,
            now=self._clock(),
            sent_last_hour=sent,
            client_address=peer,
            openpgp_backend=self._openpgp_backend,
            mailservers=self._mailservers,
        )
        verdict, hits = await self._checks(inputs)
        if isinstance(verdict, Verdict):
            await self._record_refusal(sender.address, verdict, recipients, peer, hits)
            _count_audit_hits(hits)
            return "rejected", verdict.reason, verdict.reply
        try:
            accepted = await self._store.accept(
                verdict, partial(self._stamper.stamp, verdict), actor=f"smtp:{sender.address}"
            )
        except StoreError:
            log.warning("message not stored; client told to retry", exc_info=True)
            return "deferred", "storage", replies.STORAGE_UNAVAILABLE
        except Exception:
            # e.g. a stamping fault: nothing was committed (the transaction rolled back)
            log.error("message not stored: internal fault; client told to retry", exc_info=True)
            return "deferred", "internal", replies.INTERNAL
        _count_audit_hits(hits)
        log.info(
            "accepted",
            extra={"registry": accepted.registry, "recipients": len(recipients), "size": len(raw)},
        )
        return "accepted", "ok", replies.ACCEPTED.format(registry=accepted.registry)

    async def _record_refusal(
        self,
        sender: str,
        refusal: Verdict,
        recipients: list[str],
        peer: str,
        hits: tuple[PolicyAuditHit, ...],
    ) -> None:
        try:
            await self._store.record_rejection(
                actor=f"smtp:{sender}",
                sender=sender,
                reason=refusal.reason,
                rule=refusal.rule_id or None,
                recipients=recipients,
                client_address=peer,
                audit_hits=[(hit.rule_id, hit.recipient) for hit in hits],
            )
        except StoreError:
            log.warning("refusal not audited: database unavailable", exc_info=True)


def _count_audit_hits(hits: tuple[PolicyAuditHit, ...]) -> None:
    """One metric increment per audit-mode match (its audit event is already written)."""
    for hit in hits:
        metrics.POLICY_AUDIT_HITS.labels(hit.rule_id).inc()
        log.info("policy audit hit", extra={"rule": hit.rule_id, "recipient": hit.recipient})
