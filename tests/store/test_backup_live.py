"""Backup and restore of a working gateway, on SQLite and on PostgreSQL.

A gateway with delivered mail, audit events and a revocation is backed up by
`barid backup` (its own process) while a submitter keeps sending to it; the
archive is restored by `barid restore` into a fresh directory (and, for
PostgreSQL, a fresh database), and a gateway started there serves the same
mailboxes byte for byte over IMAP, gives the same verification answers for the
same tokens (the revoked one revoked), and `barid audit verify` finds its chain
intact.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.config import load_settings
from gateway.serve import Gateway
from gateway.store.models import Message
from keys.gateway_keys import load_gateway_keys
from testkit.gateway import Live, tls_client
from testkit.messages import pgp_mime
from testkit.postgres import PgServer, create_pg_database, drop_pg_database

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
PASSPHRASE = "correct horse battery staple"
PORTS = {"BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0",
         "BARID_SMTP__TRANSFER_PORT": "0", "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
         "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0", "BARID_SMTP__MIN_FREE_DISK_MB": "0",
         "BARID_HTTP__VERIFY_FAILURES_PER_10_MINUTES": "1000000",
         # The suite's PostgreSQL runs with fsync off for speed (tests/conftest.py).
         "BARID_DATABASE__ALLOW_UNSAFE_DURABILITY": "1"}  # fmt: skip


def barid_env(data: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    return env | {"BARID_CONFIG": str(data / "barid.toml"), **extra}


async def barid_process(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """`barid ARGS` in a process of its own (the backup: truly concurrent with serving)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "admin", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def mailbox(port: int, tls: Any, who: str, password: str, name: str) -> dict[int, bytes]:
    """UID -> whole message, read over IMAP STARTTLS (without setting \\Seen)."""
    client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    try:
        client.starttls(tls)
        client.login(who, password)
        typ, _ = client.select(name, readonly=True)
        assert typ == "OK"
        typ, data = client.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        assert typ == "OK", data
        out = {}
        for entry in data:
            if isinstance(entry, tuple):
                uid = re.search(rb"UID (\d+)", entry[0])
                assert uid is not None
                out[int(uid.group(1))] = bytes(entry[1])
        return out
    finally:
        client.logout()


async def read_all(live: Live) -> dict[str, dict[int, bytes]]:
    boxes = {}
    for who, name in ((MOF, "INBOX"), ("registrar@moh.gov.example", "INBOX"), (MOH, "Sent")):
        boxes[f"{who}/{name}"] = await asyncio.to_thread(
            mailbox, live.imap_port, live.tls, who, live.credentials[who]["password"], name
        )
    return boxes


async def send_signed(live: Live, home: Path) -> str:
    raw = pgp_mime(home, MOH, MOH, [MOF, "registrar@moh.gov.example"],
                   extra=[("Barid-Employee-Code", live.credentials[MOH]["code"])])  # fmt: skip
    code, text = await live.send(MOH, [MOF, "registrar@moh.gov.example"], raw)
    assert code == 250, (code, text)
    return text.split()[-1]


async def verdicts(gateway: Gateway, tokens: list[str]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}",
                                 timeout=15) as http:  # fmt: skip
        answers = [(await http.get(f"/api/v1/verify/{token}")).json() for token in tokens]
    return [{k: a.get(k) for k in ("status", "registry", "revoked")} for a in answers]


async def round_trip(live: Live, home: Path, tmp_path: Path, db_env: dict[str, str],
                     restore_url: str | None, make_cli: Any) -> None:  # fmt: skip
    async def barid(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        """`barid ARGS` in-process, in a thread (this loop runs the gateway)."""
        cli = make_cli({k: v for k, v in env.items() if k.startswith("BARID_")})
        result = await asyncio.to_thread(cli, *args)
        return result.code, result.out, result.err

    # A gateway with delivered mail, audit events and a revocation.
    registries = [await send_signed(live, home) for _ in range(3)]
    await live.settle()
    env = barid_env(live.data, db_env)
    code, _, err = await barid("revoke", registries[0], "--reason", "issued in error", env=env)
    assert code == 0, err
    async with live.gateway.sessions() as session:
        tokens = [
            str(await session.scalar(select(Message.token).where(Message.registry_number == r)))
            for r in registries
        ]
    before = await read_all(live)
    assert len(before[f"{MOF}/INBOX"]) >= 3

    # The backup runs in its own process while a submitter keeps sending.
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    archive = tmp_path / "backup.tar"
    during: list[str] = []
    running = asyncio.Event()

    async def submitter() -> None:
        while not running.is_set():
            during.append(await send_signed(live, home))

    task = asyncio.create_task(submitter())
    await asyncio.sleep(0.2)
    try:
        code, out, err = await barid_process("backup", str(archive), "--passphrase-file",
                                             str(passphrase), "--json", env=env)  # fmt: skip
        sent_while_backing_up = len(during)
    finally:
        running.set()
        await task
    assert code == 0, err
    assert sent_while_backing_up >= 1  # mail was accepted while the backup ran
    report = json.loads(out)
    assert report["database"]["kind"] == ("sqlite" if restore_url is None else "postgresql")
    assert "copying the" in err and "backup written" in err  # progress on stderr
    await live.settle()
    after = await read_all(live)

    # Restore into a fresh directory; start a gateway there.
    restored = tmp_path / "restored"
    args = ["restore", str(archive), "--data-dir", str(restored), "--passphrase-file",
            str(passphrase), "--json"]  # fmt: skip
    if restore_url is not None:
        args += ["--database-url", restore_url]
    code, out, err = await barid(*args, env=barid_env(restored, {}))
    assert code == 0, err
    assert json.loads(out)["data_dir"] == str(restored)
    assert (restored / "keys" / "master.key").read_bytes() == (
        live.data / "keys" / "master.key"
    ).read_bytes()
    new_env = {**PORTS, **({"BARID_DATABASE__URL": restore_url} if restore_url else {})}
    settings = load_settings(restored / "barid.toml", environ=new_env)
    assert settings.data_dir == restored
    gateway = Gateway(settings)
    await gateway.start()
    try:
        copy = Live(gateway, load_gateway_keys(settings.keys_dir), restored, live.credentials,
                    tls_client(settings.tls_cert))  # fmt: skip
        await copy.settle()
        served = await read_all(copy)
        for box, messages in before.items():
            # Everything delivered before the backup, byte for byte, under the same UID.
            assert {uid: served[box].get(uid) for uid in messages} == messages, box
            # Anything more is mail accepted during the backup, identical to the original's.
            assert set(served[box].values()) <= set(after[box].values()), box
        assert await verdicts(gateway, tokens) == await verdicts(live.gateway, tokens)
        answers = await verdicts(gateway, tokens)
        assert answers[0]["status"] == "revoked" and answers[0]["revoked"]["reason"] == (
            "issued in error"
        )
        assert [a["status"] for a in answers[1:]] == ["valid", "valid"]
    finally:
        await gateway.stop()
    code, out, err = await barid("audit", "verify", "--json", env=barid_env(restored, new_env))
    assert code == 0, err
    audit = json.loads(out)
    assert audit["ok"] and audit["events"] > 0


async def test_sqlite_backup_while_serving_restores_the_same_gateway(
    live: Live, gnupghome: Path, tmp_path: Path, make_cli: Any
) -> None:
    await round_trip(live, gnupghome, tmp_path, {}, None, make_cli)


@pytest.fixture
def signer_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                   capture_output=True)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def live_pg(pg_url: str, tmp_path: Path, signer_home: Path,
                  need_tool: Any) -> AsyncIterator[Live]:  # fmt: skip
    need_tool("gpg")
    data = tmp_path / "d"
    env = barid_env(data, {"BARID_DATABASE__URL": pg_url})
    env.pop("BARID_CONFIG")
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "admin", "demo", "--data-dir", str(data),
                         "--no-serve"], capture_output=True, timeout=240, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    creds = {r["address"]: r for r in json.loads((data / "demo" / "credentials.json").read_text())}
    subprocess.run(["gpg", "--homedir", str(signer_home), "--batch", "--import",
                    creds[MOH]["key_files"]["openpgp secret key"]], check=True,
                   capture_output=True)  # fmt: skip
    settings = load_settings(data / "barid.toml", environ={"BARID_DATABASE__URL": pg_url, **PORTS})
    gateway = Gateway(settings)
    await gateway.start()
    try:
        yield Live(gateway, load_gateway_keys(settings.keys_dir), data, creds,
                   tls_client(settings.tls_cert))  # fmt: skip
    finally:
        await gateway.stop()


@pytest.fixture
def second_database(postgres_server: PgServer) -> Iterator[str]:
    name = create_pg_database(postgres_server)
    try:
        yield postgres_server.url(name)
    finally:
        drop_pg_database(postgres_server, name)


async def test_postgresql_backup_while_serving_restores_the_same_gateway(
    live_pg: Live,
    signer_home: Path,
    tmp_path: Path,
    pg_url: str,
    second_database: str,
    make_cli: Any,
) -> None:
    await round_trip(live_pg, signer_home, tmp_path, {"BARID_DATABASE__URL": pg_url},
                     second_database, make_cli)  # fmt: skip
