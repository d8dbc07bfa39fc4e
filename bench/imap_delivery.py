"""The IMAP benchmark's local-delivery part: the gateway in this process with its
worker stopped, copies queued over SMTP, then the drain timed; and Dovecot's
baseline, the same stamped copies over LMTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiosmtplib

from bench import bench_submission as sub
from bench.imap_setup import (
    DRAIN_TIMEOUT,
    LMTP_TIMEOUT,
    RECIPIENTS,
    SENDER,
    SMTP_TIMEOUT,
    SUBMIT_SESSIONS,
    BenchError,
)

if TYPE_CHECKING:
    from gateway.serve import Gateway

# ---------------------------------------------------------------- deliveries


@dataclass
class DeliverySample:
    target: str
    round: int
    copies: int
    total_s: float  # Barid: the whole drain; Dovecot: the LMTP session
    deliver_s: float  # Barid: time in deliver_local(); Dovecot: = total_s
    receipts: int = 0
    receipts_s: float = 0.0
    cpu_s: float = 0.0  # this process (Barid in-process; for Dovecot: the LMTP client)
    submit_s: float = 0.0  # Barid: SMTP submission before the drain (not timed as such)


def gateway_env(database_url: str | None) -> dict[str, str]:
    env = {"BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0",
           "BARID_SMTP__TRANSFER_PORT": "0",
           "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
           "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0",
           "BARID_SMTP__MIN_FREE_DISK_MB": "0"}  # fmt: skip
    if database_url:
        env["BARID_DATABASE__URL"] = database_url
        env["BARID_DATABASE__ALLOW_UNSAFE_DURABILITY"] = "1"  # its PostgreSQL: fsync off
    return env


@contextlib.asynccontextmanager
async def in_process_gateway(data: Path, database_url: str | None) -> AsyncIterator[Gateway]:
    from gateway.config import load_settings
    from gateway.serve import Gateway

    settings = load_settings(data / "barid.toml", environ=gateway_env(database_url))
    gateway = Gateway(settings)
    try:
        await gateway.start()
        yield gateway
    finally:
        await gateway.stop()


async def _queue_counts(gateway: Gateway) -> dict[str, int]:
    from sqlalchemy import func, select

    from gateway.store.models import DeliveryQueueEntry, ReceiptJob

    out: dict[str, int] = {}
    async with gateway.sessions() as s:
        for state in ("queued", "delivered", "failed"):
            out[state] = int(await s.scalar(
                select(func.count()).select_from(DeliveryQueueEntry)
                .where(DeliveryQueueEntry.state == state, DeliveryQueueEntry.target == "local")
            ) or 0)  # fmt: skip
        for state in ("pending", "done"):
            out[f"receipts_{state}"] = int(await s.scalar(
                select(func.count()).select_from(ReceiptJob).where(ReceiptJob.state == state)
            ) or 0)  # fmt: skip
        out["max_entry"] = int(await s.scalar(select(func.max(DeliveryQueueEntry.id))) or 0)
    return out


async def _submit(port: int, tls: ssl.SSLContext, password: str, messages: Sequence[bytes]) -> None:
    """Every message to RECIPIENTS over SUBMIT_SESSIONS STARTTLS + AUTH sessions."""
    pending = list(messages)

    async def session() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True,
                                 tls_context=tls, timeout=SMTP_TIMEOUT)  # fmt: skip
        await client.connect()
        try:
            await client.login(SENDER, password)
            while pending:
                raw = pending.pop()
                mid = f"Message-ID: <{uuid.uuid4().hex}@bench.example>\r\n".encode()
                refused, reply = await client.sendmail(SENDER, list(RECIPIENTS), mid + raw)
                if refused:
                    raise BenchError(f"submission refused recipients: {refused}")
                if not reply.startswith("2"):
                    raise BenchError(f"submission not accepted: {reply[:200]}")
        finally:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()

    await asyncio.gather(*(session() for _ in range(SUBMIT_SESSIONS)))


Copies = list[tuple[str, bytes]]  # (recipient, the stamped copy's bytes)


async def barid_deliveries(name: str, data: Path, database_url: str | None, rnd: int,
                           messages: Sequence[bytes], password: str,
                           want_copies: bool) -> tuple[DeliverySample, Copies]:  # fmt: skip
    """Submit with the worker stopped, then time the drain; (sample, copies if wanted)."""
    from sqlalchemy import select

    from gateway.store.models import DeliveryQueueEntry, MessageCopy

    async with in_process_gateway(data, database_url) as gateway:
        worker = gateway.worker
        assert worker is not None and gateway.store is not None
        await worker.stop()
        before = await _queue_counts(gateway)
        if before["queued"] or before["receipts_pending"]:
            raise BenchError(f"{name}: work left over before round {rnd}: {before}")
        tls = sub.client_tls(gateway.settings.tls_cert)
        start = time.perf_counter()
        await asyncio.wait_for(_submit(gateway.smtp_ports["submission"], tls, password, messages),
                               DRAIN_TIMEOUT)  # fmt: skip
        submit_s = time.perf_counter() - start
        queued = await _queue_counts(gateway)
        want = len(messages) * len(RECIPIENTS)
        if queued["queued"] != want:
            raise BenchError(f"{name}: {queued['queued']} copies queued, expected {want}")
        copies: Copies = []
        if want_copies:
            async with gateway.sessions() as s:
                rows = (await s.execute(
                    select(MessageCopy.id, MessageCopy.recipient)
                    .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
                    .where(DeliveryQueueEntry.id > before["max_entry"],
                           DeliveryQueueEntry.target == "local")
                    .order_by(DeliveryQueueEntry.id)
                )).all()  # fmt: skip
            copies = [(rcpt, await gateway.store.load_copy(cid)) for cid, rcpt in rows]

        spent = {"deliver": 0.0, "receipts": 0.0}
        units = {"deliver": 0, "receipts": 0}

        def timed(
            key: str, step: Callable[[], Coroutine[Any, Any, int]]
        ) -> Callable[[], Coroutine[Any, Any, int]]:
            async def wrapper() -> int:
                t0 = time.perf_counter()
                try:
                    n = await step()
                finally:
                    spent[key] += time.perf_counter() - t0
                units[key] += n
                return n

            return wrapper

        worker.deliver_local = timed("deliver", worker.deliver_local)  # type: ignore[method-assign]
        worker.write_receipts = timed("receipts", worker.write_receipts)  # type: ignore[method-assign]

        async def drain() -> None:
            while await worker.run_once():
                pass

        cpu0 = time.process_time()
        start = time.perf_counter()
        await asyncio.wait_for(drain(), DRAIN_TIMEOUT)
        total = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        after = await _queue_counts(gateway)
    delivered = after["delivered"] - queued["delivered"]
    receipts = after["receipts_done"] - queued["receipts_done"]
    if delivered != want or after["queued"] or after["receipts_pending"]:
        raise BenchError(f"{name}: after the drain {delivered} delivered of {want}; {after}")
    if delivered != units["deliver"] or receipts != units["receipts"]:
        raise BenchError(f"{name}: worker reported {units}, rows say {delivered}/{receipts}")
    sample = DeliverySample(name, rnd, delivered, total, spent["deliver"], receipts,
                            spent["receipts"], cpu, submit_s)  # fmt: skip
    return sample, copies


def lmtp_deliveries(port: int, copies: Sequence[tuple[str, bytes]], rnd: int) -> DeliverySample:
    """Every copy over one LMTP session, one transaction and one recipient each."""
    cpu0 = time.process_time()
    start = time.perf_counter()
    with smtplib.LMTP("127.0.0.1", port, timeout=LMTP_TIMEOUT) as client:
        code, _ = client.ehlo("bench.example")  # LHLO
        if code != 250:
            raise BenchError(f"dovecot LHLO answered {code}")
        for rcpt, raw in copies:
            refused = client.sendmail(SENDER, [rcpt], raw)
            if refused:
                raise BenchError(f"dovecot refused {refused}")
    elapsed = time.perf_counter() - start
    return DeliverySample("dovecot", rnd, len(copies), elapsed, elapsed,
                          cpu_s=time.process_time() - cpu0)  # fmt: skip


