"""Nothing lost, nothing forged: SIGKILL during submission, and a database that goes away."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import func, select

from gateway.config import load_settings
from gateway.serve import Gateway
from gateway.store.audit import AUDIT_KEY_PURPOSE, verify
from gateway.store.db import create_engine, session_factory
from gateway.store.messages import MessageStore
from gateway.store.models import Blob, DeliveryQueueEntry, Message, MessageCopy
from keys.gateway_keys import load_gateway_keys
from testkit.messages import pgp_mime
from testkit.serve import Server

MOH = "minister@moh.gov.example"
# The multi-process shape: the checks in a child process of `barid serve`.
POOL = {"BARID_SERVER__CHECK_WORKERS": "1"}
RECIPIENTS = ["minister@mof.gov.example", "registrar@moh.gov.example"]


async def client(server: Server, tls: Any, password: str, messages: list[bytes],
                 acked: list[tuple[str, bytes]], stop: asyncio.Event) -> None:  # fmt: skip
    """Send each message until acknowledged; reconnect whenever the server dies."""
    pending = list(messages)
    while pending and not stop.is_set():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=True,
                               tls_context=tls, timeout=10)  # fmt: skip
        try:
            await smtp.connect()
            await smtp.ehlo()
            await smtp.login(MOH, password)
            while pending:
                raw = pending[0]
                await smtp.mail(MOH)
                for rcpt in RECIPIENTS:
                    await smtp.rcpt(rcpt)
                response = await smtp.data(raw)
                if response.code == 250:
                    acked.append((response.message.split()[-1], raw))
                    pending.pop(0)
        except (aiosmtplib.SMTPException, OSError):
            await asyncio.sleep(0.1)  # not acknowledged: send it again later
        finally:
            smtp.close()


def check_children(pid: int) -> list[int]:
    """The check processes (gateway.checks.check_worker) whose parent is `pid`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"check_worker" in cmdline:
            found.append(int(proc.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_sigkill_during_submission_loses_nothing_acknowledged(
    demo_template: Path, tmp_path: Path, gnupghome: Path, credentials: dict[str, Any]
) -> None:
    from testkit.gateway import tls_client

    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    code = credentials[MOH]["code"]
    batches = [[pgp_mime(gnupghome, MOH, MOH, RECIPIENTS, extra=[("Barid-Employee-Code", code)])
                for _ in range(8)] for _ in range(4)]  # fmt: skip
    server = Server(data, POOL)
    server.start()
    acked: list[tuple[str, bytes]] = []
    stop = asyncio.Event()
    tls = tls_client(data / "tls" / "cert.pem")
    clients = [asyncio.create_task(client(server, tls, credentials[MOH]["password"], b, acked, stop))
               for b in batches]  # fmt: skip
    rng = random.Random(7)
    children: list[int] = []
    try:
        for _ in range(3):
            assert server.proc is not None
            children += (mine := check_children(server.proc.pid))
            assert len(mine) == 1  # the checks run in a child process
            await asyncio.sleep(rng.uniform(0.4, 0.8))
            os.kill(mine[0], signal.SIGKILL)  # the check process dies mid-stream
            await asyncio.sleep(rng.uniform(0.4, 0.8))
            server.kill()  # then the whole server
            await asyncio.sleep(0.2)
            await asyncio.to_thread(server.start)
        async with asyncio.timeout(120):
            await asyncio.gather(*clients)
    finally:
        stop.set()
        for task in clients:
            task.cancel()
        server.stop()
    assert len(acked) == 32
    assert len({registry for registry, _ in acked}) == 32  # no registry number twice
    for _ in range(100):  # a child of a killed server ends at end of input
        if not any(alive(pid) for pid in children):
            break
        await asyncio.sleep(0.1)
    assert not any(alive(pid) for pid in children)

    settings = load_settings(data / "barid.toml", environ={})
    keys = load_gateway_keys(settings.keys_dir)
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        store = MessageStore(sessions, keys.master_key, keys.derive(AUDIT_KEY_PURPOSE))
        for registry, raw in acked:
            message = await store.message_by_registry(registry)
            assert message is not None, registry
            assert await store.load_original(message.id) == raw  # byte-identical
        async with sessions() as s:
            messages = int(await s.scalar(select(func.count()).select_from(Message)) or 0)
            copies = int(await s.scalar(select(func.count()).select_from(MessageCopy)) or 0)
            queued = int(await s.scalar(select(func.count()).select_from(DeliveryQueueEntry)) or 0)
            blobs = int(
                await s.scalar(
                    select(func.count())
                    .select_from(Blob)
                    .where(Blob.purpose.in_(["original", "copy-prefix", "copy-suffix"]))
                )
                or 0
            )
            report = await verify(s, keys.derive(AUDIT_KEY_PURPOSE))
        # Every stored message is whole: its copies, queue entries and blobs, nothing else
        # (the delivery worker adds mailbox blobs of its own, not counted here).
        assert copies == queued == messages * len(RECIPIENTS)
        assert blobs == messages * (1 + 2 * len(RECIPIENTS))  # original + prefix/suffix per copy
        assert messages >= len(acked)  # a message may be stored whose reply was lost in the kill
        assert report.ok, report.problems
    finally:
        await engine.dispose()


async def test_database_down_gives_451_and_recovers_without_restart(
    demo_template: Path, tmp_path: Path, gnupghome: Path, credentials: dict[str, Any],
    own_postgres: Any,
) -> None:  # fmt: skip
    from testkit.gateway import tls_client

    data = tmp_path / "d"
    data.mkdir()
    url = own_postgres.server.url("postgres")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env["BARID_DATABASE__URL"] = url
    subprocess.run([sys.executable, "-m", "admin", "demo", "--data-dir", str(data), "--no-serve"],
                   check=True, capture_output=True, timeout=180, env=env)  # fmt: skip
    settings = load_settings(data / "barid.toml", environ={
        "BARID_DATABASE__URL": url, "BARID_SMTP__SUBMISSION_PORT": "0",
        "BARID_SMTP__SMTPS_PORT": "0", "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
        "BARID_SMTP__TRANSFER_PORT": "0",
        "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0",
        "BARID_SMTP__MIN_FREE_DISK_MB": "0", **POOL,
        # The suite's PostgreSQL runs with fsync off for speed (tests/conftest.py).
        "BARID_DATABASE__ALLOW_UNSAFE_DURABILITY": "1"})  # fmt: skip
    import json

    creds = {r["address"]: r for r in json.loads((data / "demo" / "credentials.json").read_text())}
    # This data dir has demo keys of its own: a GnuPG home with just its sender's key.
    import tempfile

    gnupg = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    subprocess.run(["gpg", "--homedir", str(gnupg), "--batch", "--import",
                    creds[MOH]["key_files"]["openpgp secret key"]], check=True, capture_output=True)  # fmt: skip
    gateway = Gateway(settings)
    await gateway.start()
    tls = tls_client(settings.tls_cert)
    port = gateway.smtp_ports["submission"]
    try:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=tls,
                               timeout=30)  # fmt: skip
        await smtp.connect()
        await smtp.ehlo()
        await smtp.login(MOH, creds[MOH]["password"])
        raw = pgp_mime(gnupg, MOH, MOH, RECIPIENTS,
                       extra=[("Barid-Employee-Code", creds[MOH]["code"])])  # fmt: skip
        await smtp.mail(MOH)
        for rcpt in RECIPIENTS:
            await smtp.rcpt(rcpt)
        await asyncio.to_thread(own_postgres.stop, "immediate")  # the database goes away
        with pytest.raises(aiosmtplib.SMTPDataError) as failed:
            await smtp.data(raw)
        assert (failed.value.code, failed.value.message.split()[0]) == (451, "4.3.0")
        text = failed.value.message.lower()
        assert "postgres" not in text and "error" not in text and "connect" not in text
        # still down: at MAIL too it is a temporary failure, never 5xx
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as err:
            await smtp.mail(MOH)
        assert err.value.code == 451
        await smtp.rset()
        await asyncio.to_thread(own_postgres.start)  # back, and the same gateway recovers
        deadline = time.monotonic() + 20
        while True:
            await smtp.mail(MOH)
            try:
                for rcpt in RECIPIENTS:
                    await smtp.rcpt(rcpt)
                reply = await smtp.data(raw)
            except aiosmtplib.SMTPResponseException as exc:
                reply = exc  # type: ignore[assignment]
            if reply.code == 250 or time.monotonic() > deadline:
                break
            await smtp.rset()
            await asyncio.sleep(0.5)
        assert reply.code == 250, reply
        assert gateway.check_pool is not None and gateway.check_pool.answered >= 1
        smtp.close()
    finally:
        await gateway.stop()
        subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"], check=False,
                       capture_output=True)  # fmt: skip
        shutil.rmtree(gnupg, ignore_errors=True)
