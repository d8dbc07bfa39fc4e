"""IMAP on PostgreSQL: two gateway nodes sharing one database wake each other's
IDLE clients (LISTEN/NOTIFY) and deliver each copy once between them; a database
outage answers NO [UNAVAILABLE] and the same session recovers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioimaplib
import aiosmtplib
import pytest
from sqlalchemy import func, select

from gateway.config import Settings, load_settings
from gateway.serve import Gateway
from gateway.store.access_trail import access_entries
from gateway.store.models import DeliveryQueueEntry, MailboxMessage, MailContent
from testkit.gateway import tls_client
from testkit.messages import pgp_mime

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
RECIPIENTS = [MOF, "registrar@moh.gov.example"]
PORTS = {"BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0", "BARID_SMTP__TRANSFER_PORT": "0",
         "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0", "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0",
         "BARID_SMTP__MIN_FREE_DISK_MB": "0",
         # The suite's PostgreSQL runs with fsync off for speed (tests/conftest.py).
         "BARID_DATABASE__ALLOW_UNSAFE_DURABILITY": "1"}  # fmt: skip


def demo_on(url: str, data: Path) -> tuple[Settings, dict[str, dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env["BARID_DATABASE__URL"] = url
    subprocess.run([sys.executable, "-m", "admin", "demo", "--data-dir", str(data), "--no-serve"],
                   check=True, capture_output=True, timeout=180, env=env)  # fmt: skip
    settings = load_settings(data / "barid.toml", environ={"BARID_DATABASE__URL": url, **PORTS})
    rows = json.loads((data / "demo" / "credentials.json").read_text())
    return settings, {r["address"]: r for r in rows}


@pytest.fixture
def signer_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                   capture_output=True)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)


def import_key(home: Path, creds: dict[str, dict[str, Any]], who: str) -> None:
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import",
                    creds[who]["key_files"]["openpgp secret key"]], check=True,
                   capture_output=True)  # fmt: skip


async def submit(gateway: Gateway, settings: Settings, creds: Any, raw: bytes) -> None:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.smtp_ports["submission"],
                           start_tls=True, tls_context=tls_client(settings.tls_cert), timeout=30)  # fmt: skip
    await smtp.connect()
    await smtp.login(MOH, creds[MOH]["password"])
    refused, reply = await smtp.sendmail(MOH, RECIPIENTS, raw)
    assert not refused and reply.startswith("2.0.0 Accepted"), reply
    await smtp.quit()


async def imap_login(gateway: Gateway, settings: Settings, creds: Any) -> Any:
    client = aioimaplib.IMAP4_SSL(host="127.0.0.1", port=gateway.imap_ports["imaps"],
                                  ssl_context=tls_client(settings.tls_cert), timeout=15)  # fmt: skip
    await client.wait_hello_from_server()
    assert (await client.login(MOF, creds[MOF]["password"])).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    return client


async def test_two_nodes_wake_each_others_idle_and_deliver_once(
    pg_url: str, tmp_path: Path, signer_home: Path
) -> None:
    settings, creds = demo_on(pg_url, tmp_path / "d")
    import_key(signer_home, creds, MOH)
    node_a, node_b = Gateway(settings), Gateway(settings)
    await node_a.start()
    await node_b.start()
    try:
        await asyncio.wait_for(node_b.notifier.listening.wait(), 10)
        client = await imap_login(node_b, settings, creds)  # the reader is on node B
        idle = await client.idle_start(timeout=30)
        raw = pgp_mime(signer_home, MOH, MOH, RECIPIENTS,
                       extra=[("Barid-Employee-Code", creds[MOH]["code"])])  # fmt: skip
        started = time.monotonic()
        await submit(node_a, settings, creds, raw)  # the writer is on node A
        push = await client.wait_server_push(timeout=10)
        told = dt.datetime.now(dt.UTC)
        end_to_end = time.monotonic() - started
        client.idle_done()
        await asyncio.wait_for(idle, 5)
        assert any("EXISTS" in str(line) for line in push), push

        async with node_a.sessions() as s:
            delivered_at = await s.scalar(
                select(func.min(DeliveryQueueEntry.delivered_at)).where(
                    DeliveryQueueEntry.state == "delivered"
                )
            )
        assert delivered_at is not None
        claimed = dt.datetime.strptime(delivered_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        assert (told - claimed).total_seconds() < 1.0, (told - claimed, end_to_end)
        assert end_to_end < 5.0

        response = await client.uid("fetch", "1", "(BODY.PEEK[2])")
        assert response.result == "OK"
        original = bytes(next(line for line in response.lines if isinstance(line, bytearray)))
        assert original == raw
        await client.logout()

        # Both nodes' workers ran; every copy is in exactly one mailbox, once.
        deadline = time.monotonic() + 20
        while True:
            async with node_a.sessions() as s:
                left = await s.scalar(
                    select(func.count())
                    .select_from(DeliveryQueueEntry)
                    .where(DeliveryQueueEntry.state != "delivered")
                )
                per_copy = (
                    await s.execute(
                        select(MailContent.copy_id, func.count())
                        .join(MailboxMessage, MailboxMessage.content_id == MailContent.id)
                        .where(MailContent.kind == "copy")
                        .group_by(MailContent.copy_id)
                    )
                ).all()
            if not left or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert left == 0 and len(per_copy) == 2 and {n for _, n in per_copy} == {1}
        async with node_b.sessions() as s:
            [entry] = await access_entries(s, employee=MOF)
        assert entry.protocol == "imaps" and entry.items == ("BODY[2]",)
    finally:
        await node_a.stop()
        await node_b.stop()


async def test_database_outage_answers_unavailable_and_the_session_recovers(
    own_postgres: Any, tmp_path: Path, signer_home: Path
) -> None:
    settings, creds = demo_on(own_postgres.server.url("postgres"), tmp_path / "d")
    import_key(signer_home, creds, MOH)
    gateway = Gateway(settings)
    await gateway.start()
    try:
        raw = pgp_mime(signer_home, MOH, MOH, RECIPIENTS,
                       extra=[("Barid-Employee-Code", creds[MOH]["code"])])  # fmt: skip
        await submit(gateway, settings, creds, raw)
        client = await imap_login(gateway, settings, creds)
        deadline = time.monotonic() + 20
        while (await client.uid("fetch", "1:*", "(UID)")).lines[0] == b"FETCH completed.":
            assert time.monotonic() < deadline
            await client.noop()
        await asyncio.to_thread(own_postgres.stop, "immediate")
        down = await client.uid("fetch", "1", "(BODY.PEEK[2])")
        assert down.result == "NO", down
        assert b"[UNAVAILABLE]" in down.lines[-1], down.lines
        text = b" ".join(bytes(x) for x in down.lines).lower()
        assert b"postgres" not in text and b"connect" not in text and b"error" not in text
        await asyncio.to_thread(own_postgres.start)
        deadline = time.monotonic() + 20
        while True:
            up = await client.uid("fetch", "1", "(BODY.PEEK[2])")
            if up.result == "OK" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert up.result == "OK", up
        assert bytes(next(x for x in up.lines if isinstance(x, bytearray))) == raw
        await client.logout()
    finally:
        await gateway.stop()
