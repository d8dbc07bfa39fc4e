"""The IMAP benchmark's servers: `barid serve` on a demo data directory, and Dovecot
(testkit/dovecot.py) with an LMTP listener and Barid's Argon2id password cost.
Starts and stops processes; measures nothing.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import bench_submission as sub
from bench.imap_setup import BARID, DOVECOT, IMAP_USER, BenchError, clean_env
from testkit import dovecot
from testkit.ports import free_port

# ---------------------------------------------------------------- servers


@dataclass
class Target:
    name: str
    port: int  # IMAP with STARTTLS
    user: str
    password: str
    tls: ssl.SSLContext
    server: sub.Server | None = None  # Barid's process, for its CPU time


@contextmanager
def barid_serve(name: str, data: Path, work: Path, database_url: str | None) -> Iterator[Target]:
    """`barid serve` in its own process; the Target's port is its STARTTLS IMAP port."""
    imap, http = free_port(), free_port()
    env = clean_env(database_url)
    env.update({
        "BARID_SMTP__SUBMISSION_PORT": str(free_port()),
        "BARID_SMTP__SMTPS_PORT": str(free_port()),
        "BARID_SMTP__TRANSFER_PORT": str(free_port()),
        "BARID_HTTP__PORT": str(http), "BARID_HTTP__ADMIN_PORT": "0",
        "BARID_IMAP__PORT": str(imap),
        "BARID_IMAP__IMAPS_PORT": str(free_port()),
        "BARID_SERVER__LOG_LEVEL": "warning",
        "BARID_ALLOW_ROOT": "1",  # benchmark machines run as root
    })  # fmt: skip
    log = work / f"barid-{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BARID), "serve", "--config", str(data / "barid.toml")],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        sub.wait_for_health(proc, http, log)
        sub.wait_for_port(proc, imap, log, f"barid serve ({name})")
        creds = json.loads((data / "demo" / "credentials.json").read_text())
        password = next(row["password"] for row in creds if row["address"] == IMAP_USER)
        yield Target(name, imap, IMAP_USER, password, sub.client_tls(data / "tls" / "cert.pem"),
                     sub.Server(name, proc, imap, log))  # fmt: skip
    finally:
        sub.stop_process(proc)


@dataclass
class Dovecot:
    target: Target
    lmtp_port: int
    version: str
    log: Path


@contextmanager
def dovecot_server(user: str, password: str, others: Sequence[str]) -> Iterator[Dovecot]:
    """Dovecot (testkit.dovecot) with `user` and `others` (LMTP recipients), every
    password an Argon2id hash of Barid's default cost, an LMTP listener, no quota."""
    from keys.passwords import hash_password

    if not Path(DOVECOT).exists():
        raise BenchError(f"{DOVECOT} not found: apt-get install -y dovecot-imapd dovecot-lmtpd")
    hashed: dict[str, str] = {}

    def argon2id(secret: str) -> str:
        if secret not in hashed:
            hashed[secret] = "{ARGON2ID}" + hash_password(secret)
        return hashed[secret]

    users = dict.fromkeys((user, *others), password)
    # A start-up failure raises RuntimeError (KeyError: no `dovecot` account as root).
    with dovecot.dovecot_server(DOVECOT, users, quota=False, lmtp=True,
                                password_hash=argon2id) as server:  # fmt: skip
        tls = ssl.create_default_context(cafile=str(server.ca_file))
        tls.check_hostname = False  # the certificate names localhost; we dial 127.0.0.1
        yield Dovecot(Target("dovecot", server.imap_port, user, password, tls),
                      server.lmtp_port, server.version, server.log)  # fmt: skip
