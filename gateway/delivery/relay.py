"""Remote delivery: copies to peer gateways and agency mail servers, receipts to peers.

Owns: the `delivery_queue` entries whose target is a peer gateway or an agency
IMAP server (gateway.model.target), and the `relay_outbox` (delivery receipts
owed to peers): taking due work, sending it by the target's kind
(gateway.federation.client over SMTP, or gateway.delivery.imap_target by IMAP
APPEND), and recording each outcome with its retry, receipt and audit event
(claiming, with its lease, is gateway.delivery.relay_work). Must not: build
copies or receipts (they are stored at acceptance / reception), decide policy,
or read the target's text form (gateway.model.target does).

Exactly once across restarts and several nodes. An entry is claimed in its own
short transaction by a guarded update (`state='delivering'`, `next_attempt_at`
= the end of a lease) before anything is sent, and its outcome is recorded in
a second transaction. A crash in between leaves it "delivering"; once the lease
is over it is taken again as *maybe done*: a Barid peer recognises the same
trace code and answers 250 without filing it twice, and an IMAP target is
searched for the copy's `Barid-Trace` before appending again.

Outcomes. Delivered: "delivered" (for an agency server, a delivery receipt for
the sender is owed; for a peer, the peer returns its own signed receipt).
Permanent (5xx): "failed", with a non-delivery receipt carrying the remote
server and its reply (RFC 3464 part, gateway.delivery.receipts). Temporary (4xx, no
connection, TLS refused): queued again after `retry_first_seconds` doubled per
attempt up to `retry_max_seconds`; past `retry_window_hours` after acceptance,
"failed" with a non-delivery receipt ("retry-window-expired"). A peer whose
certificate does not match its trust gets nothing, and a "federation.tls-alert"
event goes to the audit trail (once per target and round).

Call order: `start()` -> `wake()` -> `stop()`; `run_once()` does one round.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.alerts import kinds
from gateway.config import DeliverySettings
from gateway.delivery.imap_target import AppendOutcome, ImapServer, append_copy
from gateway.delivery.loop import WorkerLoop
from gateway.delivery.relay_work import Work, claim_due, parse, stamp
from gateway.federation.client import Outcome, Transfer, send_batch
from gateway.federation.peers import Federation
from gateway.model.target import DeliveryTarget, TargetKind
from gateway.stamping.dkim import DkimSigner
from gateway.store import audit
from gateway.store.blobs import BlobCipher, fetch_outside, open_blob
from gateway.store.db import writing
from gateway.store.errors import DATABASE_ERRORS, database_trouble
from gateway.store.models import (
    Blob,
    DeliveryQueueEntry,
    ReceiptJob,
    RelayOutboxEntry,
)

log = logging.getLogger("barid.relay")
# A peer's certificate did not match its trust (details: remote, error; target: the peer).
TLS_ALERT_ACTION = kinds.TLS_ALERT_ACTION


def next_attempt(
    attempts: int, now: dt.datetime, deadline: dt.datetime, settings: DeliverySettings
) -> dt.datetime | None:
    """When to try again after `attempts` failed tries (None: the window is over).

    Exponential backoff (first, 2x first, 4x first ... capped at the maximum),
    with up to 10% random spread so that many copies failing together do not
    come back together; never later than the end of the window, where one
    last attempt is made.
    """
    if now >= deadline:
        return None
    wait = min(settings.retry_first_seconds * 2 ** max(0, attempts - 1), settings.retry_max_seconds)
    wait *= 1 + random.random() / 10  # noqa: S311 - spreading retries, not a secret
    return min(now + dt.timedelta(seconds=wait), deadline)


@dataclass(frozen=True)
class _Result:
    work: Work
    kind: str  # delivered | temporary | permanent
    reply: str
    remote: str
    trust_failure: bool = False


class RelayWorker(WorkerLoop):
    log = log
    what = "remote delivery"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: BlobCipher,
        federation: Federation,
        mailservers: Mapping[str, ImapServer],
        *,
        delivery: DeliverySettings,
        signer_for: Callable[[str], DkimSigner | None],
        tls_cert: Path,
        tls_key: Path,
        hostname: str,
        audit_key: bytes,
        on_receipts: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__()
        self._sessions = sessions
        self._cipher = cipher
        self._federation = federation
        self._mailservers = dict(mailservers)
        self._settings = delivery
        self._signer_for = signer_for
        self._cert, self._key = tls_cert, tls_key
        self._hostname = hostname
        self._audit_key = audit_key
        self._on_receipts = on_receipts
        self._lease = dt.timedelta(seconds=2 * delivery.timeout_seconds + 30)

    # ---- running -----------------------------------------------------------------

    async def run_once(self) -> int:
        """One round: claim due work, send it, record the outcomes. Units done."""
        work = await self._claim()
        if not work:
            return 0
        payloads = _Payloads(self._cipher, self._signer_for, await self._blobs(work))
        results = await self._send(work, payloads)
        await self._record(results)
        return len(results)

    # ---- claiming ------------------------------------------------------------------

    async def _claim(self) -> list[Work]:
        return await claim_due(self._sessions, self._lease)

    async def _blobs(self, work: Sequence[Work]) -> dict[str, Blob]:
        """The (encrypted) blob rows every claimed unit needs, read at once."""
        wanted = {blob_id for unit in work for blob_id in unit.blob_ids}
        try:
            async with self._sessions() as session:
                found = {
                    b.id: b
                    for b in (await session.scalars(select(Blob).where(Blob.id.in_(wanted)))).all()
                }
        except DATABASE_ERRORS as exc:
            raise database_trouble("relay", exc) from None
        await fetch_outside(self._cipher, found.values())
        return found

    # ---- sending ---------------------------------------------------------------------

    async def _send(self, work: Sequence[Work], payloads: _Payloads) -> list[_Result]:
        groups: dict[DeliveryTarget, list[Work]] = defaultdict(list)
        for unit in work:
            groups[unit.target].append(unit)
        limit = asyncio.Semaphore(self._settings.concurrency)
        jobs: list[Awaitable[list[_Result]]] = []
        for target, units in groups.items():
            jobs += self._sends(target, units, payloads, limit)
        results: list[_Result] = []
        for batch in await asyncio.gather(*jobs):
            results += batch
        return results

    def _sends(
        self,
        target: DeliveryTarget,
        units: list[Work],
        payloads: _Payloads,
        limit: asyncio.Semaphore,
    ) -> list[Awaitable[list[_Result]]]:
        """The one dispatch on the kind of target: a peer gateway gets batches over
        up to `concurrency` connections, an agency IMAP server one APPEND per copy."""
        match target.kind:
            case TargetKind.PEER:
                lanes = min(self._settings.concurrency, len(units))
                return [
                    self._to_peer(target.name, units[lane::lanes], payloads, limit)
                    for lane in range(lanes)
                ]
            case TargetKind.IMAP:
                return [self._to_imap(target.name, unit, payloads, limit) for unit in units]
            case TargetKind.LOCAL:  # pragma: no cover - claim_due takes remote targets only
                raise ValueError("local copies are delivered by gateway.delivery.local")

    async def _to_peer(
        self, name: str, units: list[Work], payloads: _Payloads, limit: asyncio.Semaphore
    ) -> list[_Result]:
        peer = self._federation.get(name)
        if peer is None:
            text = f"peer {name} is not configured"
            return [_Result(u, "temporary", text, name) for u in units]
        async with limit:
            outcomes: list[Outcome] = await send_batch(
                peer,
                [Transfer(u.mail_from, u.recipient, prepare=payloads.maker(u)) for u in units],
                cert=self._cert,
                key=self._key,
                hostname=self._hostname,
                seconds=self._settings.timeout_seconds,
            )
        remote = peer.host or name
        return [
            _Result(u, o.kind, o.reply, remote, o.trust_failure)
            for u, o in zip(units, outcomes, strict=True)
        ]

    async def _to_imap(
        self, name: str, unit: Work, payloads: _Payloads, limit: asyncio.Semaphore
    ) -> list[_Result]:
        server = self._mailservers.get(name)
        if server is None:
            return [_Result(unit, "temporary", f"mail server {name} is not configured", name)]
        try:
            data = await payloads.make(unit)
        except Exception:
            log.exception("copy could not be prepared for its mail server")
            return [_Result(unit, "temporary", "copy could not be prepared", server.host)]
        async with limit:
            outcome: AppendOutcome = await append_copy(
                server,
                unit.recipient,
                data,
                trace_code=unit.trace_code,
                maybe_done=unit.maybe_done,
            )
        return [_Result(unit, outcome.kind, outcome.detail, outcome.remote or server.host)]

    # ---- recording ---------------------------------------------------------------------

    async def _record(self, results: Sequence[_Result]) -> None:
        now = dt.datetime.now(dt.UTC)
        window = dt.timedelta(hours=self._settings.retry_window_hours)
        receipts = False
        counted: list[tuple[str, str]] = []
        alerted: set[DeliveryTarget] = set()
        try:
            async with writing(self._sessions) as session:
                events: list[audit.Event] = []
                for r in results:
                    unit = r.work
                    kind = "outbox" if unit.table == "outbox" else unit.target.kind.value
                    if r.trust_failure and unit.target not in alerted:
                        alerted.add(unit.target)
                        events.append(
                            audit.Event(
                                actor="gateway",
                                action=TLS_ALERT_ACTION,
                                target=unit.target.column,
                                outcome="alert",
                                details={"remote": r.remote, "error": r.reply},
                            )
                        )
                    if r.kind == "delivered":
                        await self._finish(session, unit, now, delivered=True, error=None)
                        if unit.table == "copy":
                            events.append(self._event("message.relay", unit, r))
                            if unit.target.kind is TargetKind.IMAP:
                                session.add(_job(unit, "delivery", now))
                                receipts = True
                        counted.append((kind, "delivered"))
                        continue
                    retry_at = None
                    if r.kind == "temporary":
                        retry_at = next_attempt(
                            unit.attempts, now, parse(unit.created_at) + window, self._settings
                        )
                    if retry_at is not None:
                        await self._again(session, unit, retry_at, r.reply)
                        counted.append((kind, "deferred"))
                        continue
                    reason = (
                        "recipient-refused" if r.kind == "permanent" else "retry-window-expired"
                    )
                    await self._finish(session, unit, now, delivered=False, error=r.reply)
                    if unit.table == "copy":
                        session.add(
                            _job(unit, "non-delivery", now, reason, r.reply, r.remote, _status(r))
                        )
                        receipts = True
                        events.append(self._event("message.undeliverable", unit, r, reason))
                    else:
                        events.append(self._event("federation.receipt-undeliverable", unit, r))
                    counted.append((kind, "failed"))
                await audit.append_many(session, self._audit_key, events)
        except DATABASE_ERRORS as exc:
            raise database_trouble("relay", exc) from None
        for kind, outcome in counted:
            metrics.RELAYS.labels(kind, outcome).inc()
        if alerted:
            metrics.ALERTS.labels(kinds.AlertKind.PEER_TLS.value).inc(len(alerted))
        if receipts:
            self._on_receipts()

    @staticmethod
    async def _finish(
        session: AsyncSession, unit: Work, now: dt.datetime, *, delivered: bool, error: str | None
    ) -> None:
        model: Any = DeliveryQueueEntry if unit.table == "copy" else RelayOutboxEntry
        done = "delivered" if unit.table == "copy" else "sent"
        values: dict[str, object] = {
            "state": done if delivered else "failed",
            "updated_at": stamp(now),
            "last_error": error,
        }
        if delivered:
            values["delivered_at" if unit.table == "copy" else "sent_at"] = stamp(now)
        await session.execute(
            update(model)
            .where(model.id == unit.id, model.state == "delivering")
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    @staticmethod
    async def _again(session: AsyncSession, unit: Work, at: dt.datetime, error: str) -> None:
        model: Any = DeliveryQueueEntry if unit.table == "copy" else RelayOutboxEntry
        await session.execute(
            update(model)
            .where(model.id == unit.id, model.state == "delivering")
            .values(
                state="queued",
                next_attempt_at=stamp(at),
                last_error=error,
                updated_at=stamp(dt.datetime.now(dt.UTC)),
            )
            .execution_options(synchronize_session=False)
        )

    @staticmethod
    def _event(action: str, unit: Work, r: _Result, reason: str | None = None) -> audit.Event:
        details: dict[str, object] = {
            "recipient": unit.recipient,
            "target": unit.target.column,
            "remote": r.remote,
            "reply": r.reply,
            "attempts": unit.attempts,
        }
        if unit.trace_code:
            details["trace"] = unit.trace_code
        if reason:
            details["reason"] = reason
        return audit.Event(actor="gateway", action=action, target=unit.registry, details=details)


class _Payloads:
    """The bytes of each claimed unit, made when its turn to be sent comes: the
    blobs decrypted once per round (a message's original is shared by all its
    copies), a copy DKIM-signed in a worker thread."""

    def __init__(
        self,
        cipher: BlobCipher,
        signer_for: Callable[[str], DkimSigner | None],
        blobs: Mapping[str, Blob],
    ) -> None:
        self._cipher = cipher
        self._signer_for = signer_for
        self._blobs = blobs
        self._plain: dict[str, bytes] = {}

    def _open(self, blob_id: str) -> bytes:
        if blob_id not in self._plain:
            self._plain[blob_id] = open_blob(self._cipher, self._blobs[blob_id])
        return self._plain[blob_id]

    async def make(self, unit: Work) -> bytes:
        data = b"".join(self._open(i) for i in unit.blob_ids)
        if unit.table == "copy":
            signer = self._signer_for(unit.sign_domain)
            if signer is not None:
                data = await asyncio.to_thread(signer.signed, data)
        return data

    def maker(self, unit: Work) -> Callable[[], Awaitable[bytes]]:
        return lambda: self.make(unit)


def _job(
    unit: Work,
    kind: str,
    now: dt.datetime,
    reason: str | None = None,
    detail: str | None = None,
    remote: str | None = None,
    status: str | None = None,
) -> ReceiptJob:
    return ReceiptJob(
        message_id=unit.message_id,
        kind=kind,
        recipient=unit.recipient,
        reason=reason,
        detail=detail,
        remote_mta=_host_name(remote),
        status=status,
        state="pending",
        event_at=stamp(now),
    )


def _status(result: _Result) -> str | None:
    """The RFC 3463 status of an IMAP server's refusal (an SMTP reply carries its own:
    gateway.delivery.receipts reads it from the detail). Size limits are 5.3.4."""
    if result.work.target.kind is not TargetKind.IMAP or result.kind != "permanent":
        return None
    return "5.3.4" if "[LIMIT]" in result.reply or "[TOOBIG]" in result.reply else None


def _host_name(remote: str | None) -> str | None:
    """A DNS host name for the report's Remote-MTA (addresses and peer names are left out)."""
    if not remote or "." not in remote or remote.replace(".", "").isdigit() or ":" in remote:
        return None
    return remote
