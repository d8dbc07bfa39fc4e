"""An in-process gateway for tests and benchmarks: the demo government made by
`barid demo`, a whole gateway (real SMTP and IMAP listeners, TLS, database,
policy, delivery worker) started in the caller's event loop on free ports, and a
TLS client context that trusts it. No pytest fixtures here (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib

from gateway.config import load_settings
from gateway.serve import Gateway

# Every listener on a port the system picks; no free-disk floor.
EPHEMERAL_ENV = {
    "BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0",
    "BARID_SMTP__TRANSFER_PORT": "0", "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
    "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0", "BARID_SMTP__MIN_FREE_DISK_MB": "0",
    # Checks in a thread of the test's process (tests patch them there); the check
    # processes are tested with BARID_SERVER__CHECK_WORKERS=1.
    "BARID_SERVER__CHECK_WORKERS": "0",
}  # fmt: skip


def clean_env() -> dict[str, str]:
    """The process environment without any BARID_* variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}


def make_demo(data: Path, timeout: float = 180) -> None:
    """`barid demo --no-serve` into `data` (a fresh directory)."""
    subprocess.run([sys.executable, "-m", "admin", "demo", "--data-dir", str(data), "--no-serve"],
                   check=True, capture_output=True, timeout=timeout, env=clean_env())  # fmt: skip


def demo_credentials(data: Path) -> dict[str, dict[str, Any]]:
    """The demo's credentials.json, by address."""
    rows = json.loads((data / "demo" / "credentials.json").read_text())
    return {row["address"]: row for row in rows}


def new_gnupghome() -> Path:
    """A fresh, short GnuPG home (gpg-agent's socket path must stay under ~100 bytes)."""
    return Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))


def drop_gnupghome(home: Path) -> None:
    """Stop the home's gpg-agent and remove it."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                   capture_output=True, timeout=30)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)


def import_demo_keys(home: Path, credentials: dict[str, dict[str, Any]]) -> None:
    """Every demo employee's secret key into `home`, as a mail client would hold it."""
    for row in credentials.values():
        subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import",
                        row["key_files"]["openpgp secret key"]], check=True, capture_output=True)  # fmt: skip


@dataclass
class Live:
    gateway: Gateway
    gateway_keys: Any
    data: Path
    credentials: dict[str, dict[str, Any]]
    tls: Any

    @property
    def port(self) -> int:
        return self.gateway.smtp_ports["submission"]

    @property
    def imap_port(self) -> int:
        return self.gateway.imap_ports["imap"]

    @property
    def imaps_port(self) -> int:
        return self.gateway.imap_ports["imaps"]

    async def settle(self, seconds: float = 20.0) -> None:
        """Until no local delivery or receipt is left to do (the worker runs too)."""
        import asyncio

        from sqlalchemy import func, select

        from gateway.store.models import DeliveryQueueEntry, ReceiptJob

        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            async with self.gateway.sessions() as s:
                queued = await s.scalar(
                    select(func.count())
                    .select_from(DeliveryQueueEntry)
                    .where(DeliveryQueueEntry.state == "queued",
                           DeliveryQueueEntry.target == "local")
                )  # fmt: skip
                pending = await s.scalar(
                    select(func.count())
                    .select_from(ReceiptJob)
                    .where(ReceiptJob.state == "pending")
                )
            if not queued and not pending:
                return
            assert asyncio.get_running_loop().time() < deadline, "delivery did not finish"
            await asyncio.sleep(0.05)

    async def send(self, sender: str, recipients: list[str], raw: bytes,
                   password: str | None = None) -> tuple[int, str]:  # fmt: skip
        """Submit over STARTTLS + AUTH; (code, text) of the final reply."""
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, start_tls=True,
                                 tls_context=self.tls, timeout=30)  # fmt: skip
        await client.connect()
        try:
            await client.ehlo()
            await client.login(sender, password or self.credentials[sender]["password"])
            await client.mail(sender)
            for rcpt in recipients:
                await client.rcpt(rcpt)
            response = await client.data(raw)
            return response.code, response.message
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        finally:
            client.close()


def tls_client(cert: Path) -> Any:
    import ssl

    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    return ctx


@asynccontextmanager
async def running(data: Path, credentials: dict[str, dict[str, Any]],
                  env: dict[str, str] | None = None,
                  admin_app: Any = None) -> AsyncIterator[Live]:  # fmt: skip
    """The gateway of data directory `data`, started in this loop (every port free,
    `env` on top of EPHEMERAL_ENV; `admin_app` starts the admin listener too),
    stopped at the end."""
    settings = load_settings(data / "barid.toml", environ={**EPHEMERAL_ENV, **(env or {})})
    gateway = Gateway(settings, admin_app)
    try:
        await gateway.start()
    except BaseException:
        await gateway.stop()
        raise
    try:
        from keys.gateway_keys import load_gateway_keys

        keys = load_gateway_keys(settings.keys_dir)
        yield Live(gateway, keys, data, credentials, tls_client(settings.tls_cert))
    finally:
        await gateway.stop()
