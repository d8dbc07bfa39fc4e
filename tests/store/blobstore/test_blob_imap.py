"""A tampered object behind an IMAP mail: FETCH answers NO, the session goes on."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import aioimaplib
import aiosmtplib

from gateway.config import load_settings
from gateway.serve import Gateway
from testkit.gateway import tls_client
from testkit.messages import pgp_mime
from testkit.ports import EPHEMERAL_PORTS_ENV
from testkit.s3server import INLINE_MAX

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"


async def test_tampered_object_answers_no_and_the_session_goes_on(
    demo_template: Path, tmp_path: Path, gnupghome: Path, credentials: dict[str, Any]
) -> None:
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    env = EPHEMERAL_PORTS_ENV | {
        "BARID_SMTP__MIN_FREE_DISK_MB": "0",
        "BARID_BLOBS__BACKEND": "filesystem",
        "BARID_BLOBS__INLINE_MAX_BYTES": str(INLINE_MAX),
    }
    settings = load_settings(data / "barid.toml", environ=env)
    gateway = Gateway(settings)
    await gateway.start()
    tls = tls_client(settings.tls_cert)
    try:
        raw = pgp_mime(gnupghome, MOH, MOH, [MOF],
                       extra=[("Barid-Employee-Code", credentials[MOH]["code"])])  # fmt: skip
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.smtp_ports["submission"],
                               start_tls=True, tls_context=tls, timeout=30)  # fmt: skip
        await smtp.connect()
        await smtp.login(MOH, credentials[MOH]["password"])
        await smtp.sendmail(MOH, [MOF], raw)
        await smtp.quit()
        client = aioimaplib.IMAP4_SSL(host="127.0.0.1", port=gateway.imap_ports["imaps"],
                                      ssl_context=tls, timeout=15)  # fmt: skip
        await client.wait_hello_from_server()
        assert (await client.login(MOF, credentials[MOF]["password"])).result == "OK"
        assert (await client.select("INBOX")).result == "OK"
        deadline = time.monotonic() + 20
        while (await client.uid("fetch", "1:*", "(UID)")).lines[0] == b"FETCH completed.":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        whole = await client.uid("fetch", "1", "(BODY.PEEK[])")
        assert whole.result == "OK"
        objects = [p for p in settings.blobs_dir.rglob("*") if p.is_file()]
        assert objects  # the original and the mailbox copy live outside the database
        for path in objects:
            sealed = path.read_bytes()
            path.write_bytes(bytes([sealed[0] ^ 1]) + sealed[1:])
        refused = await client.uid("fetch", "1", "(BODY.PEEK[])")
        assert refused.result == "NO", refused
        assert b"integrity" in refused.lines[-1]
        assert (await client.noop()).result == "OK"  # the connection was not dropped
        await client.logout()
    finally:
        await gateway.stop()
