"""Local delivery survives SIGKILL: after restarts every queued copy is in its
recipient's INBOX exactly once, with exactly one receipt each (docs/CONTRACT.md §6)."""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.config import load_settings
from gateway.serve import Gateway
from gateway.store.audit import AUDIT_KEY_PURPOSE, verify
from gateway.store.db import create_engine, session_factory
from gateway.store.models import (
    DeliveryQueueEntry,
    Employee,
    Mailbox,
    MailboxMessage,
    MailContent,
    Message,
    MessageCopy,
    ReceiptJob,
)
from keys.gateway_keys import load_gateway_keys
from testkit.gateway import tls_client
from testkit.messages import pgp_mime
from testkit.serve import Server

MOH = "minister@moh.gov.example"
RECIPIENTS = ["minister@mof.gov.example", "registrar@moh.gov.example"]
MESSAGES = 40


async def fill_queue(data: Path, credentials: dict[str, Any], raws: list[bytes]) -> None:
    """Accept `raws` with the delivery worker stopped, so the copies wait in the queue."""
    env = {"BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0", "BARID_SMTP__TRANSFER_PORT": "0",
           "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
           "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0", "BARID_SMTP__MIN_FREE_DISK_MB": "0"}  # fmt: skip
    settings = load_settings(data / "barid.toml", environ=env)
    gateway = Gateway(settings)
    await gateway.start()
    try:
        assert gateway.worker is not None
        await gateway.worker.stop()
        import aiosmtplib

        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.smtp_ports["submission"],
                               start_tls=True, tls_context=tls_client(settings.tls_cert),
                               timeout=30)  # fmt: skip
        await smtp.connect()
        await smtp.login(MOH, credentials[MOH]["password"])
        for raw in raws:
            response = await smtp.sendmail(MOH, RECIPIENTS, raw)
            assert all(code == 250 for code, _ in response[0].values()) or not response[0]
        await smtp.quit()
    finally:
        await gateway.stop()


async def counts(data: Path) -> dict[str, Any]:
    settings = load_settings(data / "barid.toml", environ={})
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        async with sessions() as s:

            async def one(query: Any) -> int:
                return int(await s.scalar(query) or 0)

            per_copy = (
                await s.execute(
                    select(MailContent.copy_id, func.count())
                    .join(MailboxMessage, MailboxMessage.content_id == MailContent.id)
                    .where(MailContent.kind == "copy")
                    .group_by(MailContent.copy_id)
                )
            ).all()
            folders = dict(
                (
                    await s.execute(
                        select(Mailbox.name, func.count())
                        .join(MailboxMessage, MailboxMessage.mailbox_id == Mailbox.id)
                        .join(Employee, Employee.id == Mailbox.employee_id)
                        .where(Employee.address == MOH)
                        .group_by(Mailbox.name)
                    )
                ).all()
            )
            keys = load_gateway_keys(settings.keys_dir)
            return {
                "messages": await one(select(func.count()).select_from(Message)),
                "copies": await one(select(func.count()).select_from(MessageCopy)),
                "queued": await one(
                    select(func.count())
                    .select_from(DeliveryQueueEntry)
                    .where(DeliveryQueueEntry.state != "delivered")
                ),
                "pending_receipts": await one(
                    select(func.count()).select_from(ReceiptJob).where(ReceiptJob.state != "done")
                ),
                "receipt_jobs": await one(select(func.count()).select_from(ReceiptJob)),
                "per_copy": dict(per_copy),
                "sender_folders": folders,
                "audit_ok": (await verify(s, keys.derive(AUDIT_KEY_PURPOSE))).ok,
            }
    finally:
        await engine.dispose()


async def test_sigkill_during_delivery_delivers_every_copy_exactly_once(
    demo_template: Path, tmp_path: Path, gnupghome: Path, credentials: dict[str, Any]
) -> None:
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    code = credentials[MOH]["code"]
    raws = [
        pgp_mime(
            gnupghome,
            MOH,
            MOH,
            RECIPIENTS,
            extra=[("Barid-Employee-Code", code)],
            # about 100 KiB on the wire: copies are described in the parse process
            document=b"%PDF-1.7 crash " + str(i).encode() + bytes(range(256)) * 280,
        )
        for i in range(MESSAGES)
    ]
    await fill_queue(data, credentials, raws)
    before = await counts(data)
    assert before["messages"] == MESSAGES and before["copies"] == MESSAGES * len(RECIPIENTS)
    assert before["queued"] == before["copies"]

    server = Server(data)
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        server.start()
        await asyncio.sleep(rng.uniform(0.05, 0.4))  # the worker is busy delivering
        server.kill()
        kills += 1
        now = await counts(data)
        if not now["queued"] and not now["pending_receipts"]:
            break
    server.start()
    try:
        for _ in range(600):
            now = await counts(data)
            if not now["queued"] and not now["pending_receipts"]:
                break
            await asyncio.sleep(0.1)
    finally:
        server.stop()

    after = await counts(data)
    assert kills >= 1
    assert after["queued"] == 0 and after["pending_receipts"] == 0
    copies = before["copies"]
    # Every copy is in exactly one mailbox, once.
    assert len(after["per_copy"]) == copies and set(after["per_copy"].values()) == {1}
    # One acceptance receipt per message and one delivery receipt per copy, each stored once.
    assert after["receipt_jobs"] == MESSAGES + copies
    assert after["sender_folders"]["Receipts"] == MESSAGES + copies
    assert after["sender_folders"]["Sent"] == MESSAGES
    assert after["audit_ok"]
