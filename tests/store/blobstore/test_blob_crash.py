"""SIGKILL during concurrent submissions with documents outside the database.

With the filesystem and S3 backends: every acknowledged message reads back
byte-identical, every row's object is there, and after `barid blobs gc` runs
past its grace period no object is left that no row references.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import select

from gateway.config import load_settings
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.blobstore import BlobStores, stores_from_settings
from gateway.store.db import create_engine, session_factory
from gateway.store.messages import MessageStore
from gateway.store.models import Blob
from keys.gateway_keys import load_gateway_keys
from testkit.messages import pgp_mime
from testkit.s3server import INLINE_MAX, S3Server
from testkit.serve import Server

MOH = "minister@moh.gov.example"
RECIPIENTS = ["minister@mof.gov.example", "registrar@moh.gov.example"]


async def _send_all(server: Server, tls: Any, password: str, messages: list[bytes],
                    acked: list[tuple[str, bytes]]) -> None:  # fmt: skip
    """Send each message until acknowledged; reconnect whenever the server dies."""
    pending = list(messages)
    while pending:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, start_tls=True,
                               tls_context=tls, timeout=10)  # fmt: skip
        try:
            await smtp.connect()
            await smtp.ehlo()
            await smtp.login(MOH, password)
            while pending:
                await smtp.mail(MOH)
                for rcpt in RECIPIENTS:
                    await smtp.rcpt(rcpt)
                response = await smtp.data(pending[0])
                if response.code == 250:
                    acked.append((response.message.split()[-1], pending.pop(0)))
        except (aiosmtplib.SMTPException, OSError):
            await asyncio.sleep(0.1)  # not acknowledged: send it again later
        finally:
            smtp.close()


def _blob_env(backend: str, data: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {"BARID_BLOBS__INLINE_MAX_BYTES": str(INLINE_MAX),
           "BARID_BLOBS__GC_INTERVAL_SECONDS": "0"}  # fmt: skip
    if backend == "filesystem":
        return env | {"BARID_BLOBS__BACKEND": "filesystem"}
    server: S3Server = request.getfixturevalue("s3server")
    return env | server.env(prefix=f"crash-{data.parent.name}/")


async def _check(data: Path, env: dict[str, str], acked: list[tuple[str, bytes]]) -> None:
    settings = load_settings(data / "barid.toml", environ=env)
    keys = load_gateway_keys(settings.keys_dir)
    engine = create_engine(settings.database_url)
    stores: BlobStores = stores_from_settings(settings)
    try:
        sessions = session_factory(engine)
        store = MessageStore(sessions, keys.master_key, keys.derive(AUDIT_KEY_PURPOSE), stores)
        for registry, raw in acked:
            message = await store.message_by_registry(registry)
            assert message is not None, registry
            assert await store.load_original(message.id) == raw  # byte-identical
        assert stores.write is not None
        async with sessions() as s:
            rows = set(await s.scalars(select(Blob.location).where(Blob.location.is_not(None))))
        scheme = stores.write.scheme
        objects = {f"{scheme}:{o.key}" async for o in stores.write.list()}
        assert rows and rows <= objects  # every row's object is there
        orphans = objects - rows
        assert all(o.startswith(f"{scheme}:") for o in orphans)
        time.sleep(1.1)  # past the one-second grace given below
        cli = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")} | env
        done = subprocess.run([sys.executable, "-m", "admin", "blobs", "gc", "--grace-seconds", "1",
                               "--config", str(data / "barid.toml")],
                              env=cli, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"removed {len(orphans)} orphan(s)" in done.stdout
        left = {f"{scheme}:{o.key}" async for o in stores.write.list()}
        assert left == rows  # no orphan object, nothing referenced removed
    finally:
        await stores.close()
        await engine.dispose()


@pytest.mark.parametrize("backend", ["filesystem", "s3"])
async def test_sigkill_during_submission_with_blobs_outside(
    backend: str, request: pytest.FixtureRequest, demo_template: Path, tmp_path: Path,
    gnupghome: Path, credentials: dict[str, Any],
) -> None:  # fmt: skip
    from testkit.gateway import tls_client

    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    env = _blob_env(backend, data, request)
    code = credentials[MOH]["code"]
    batches = [[pgp_mime(gnupghome, MOH, MOH, RECIPIENTS, extra=[("Barid-Employee-Code", code)])
                for _ in range(4)] for _ in range(3)]  # fmt: skip
    server = Server(data, env=env)
    server.start()
    acked: list[tuple[str, bytes]] = []
    tls = tls_client(data / "tls" / "cert.pem")
    password = credentials[MOH]["password"]
    clients = [asyncio.create_task(_send_all(server, tls, password, b, acked)) for b in batches]
    rng = random.Random(18)
    try:
        for _ in range(2):
            await asyncio.sleep(rng.uniform(0.6, 1.2))
            server.kill()
            await asyncio.sleep(0.2)
            await asyncio.to_thread(server.start)
        async with asyncio.timeout(120):
            await asyncio.gather(*clients)
    finally:
        for task in clients:
            task.cancel()
        server.stop()
    assert len(acked) == 12 and len({registry for registry, _ in acked}) == 12
    await _check(data, env, acked)
