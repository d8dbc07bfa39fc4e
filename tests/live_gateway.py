"""Fixtures for end-to-end tests: the demo government, its keys, and a whole
gateway (real SMTP and IMAP listeners, TLS, database, policy, delivery worker)
in the test's loop. Loaded for the whole suite by `pytest_plugins` in
tests/conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from gateway.config import load_settings
from gateway.serve import Gateway


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    subprocess.run([sys.executable, "-m", "admin", "demo", "--data-dir", str(data), "--no-serve"],
                   check=True, capture_output=True, timeout=180, env=env)  # fmt: skip
    return data


@pytest.fixture(scope="session")
def credentials(demo_template: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads((demo_template / "demo" / "credentials.json").read_text())
    return {row["address"]: row for row in rows}


@pytest.fixture(scope="session")
def gnupghome(demo_template: Path, credentials: dict[str, dict[str, Any]]) -> Iterator[Path]:
    """Every demo employee's secret key, as a mail client would hold it."""
    if shutil.which("gpg") is None:
        if os.environ.get("BARID_REQUIRE_ALL") == "1":
            pytest.fail("gpg is not installed (required because BARID_REQUIRE_ALL=1)")
        pytest.skip("gpg is not installed")
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    for row in credentials.values():
        subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import",
                        row["key_files"]["openpgp secret key"]], check=True, capture_output=True)  # fmt: skip
    yield home
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                   capture_output=True)  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)


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


@pytest.fixture
async def live(demo_template: Path, tmp_path: Path,
               credentials: dict[str, dict[str, Any]]) -> AsyncIterator[Live]:  # fmt: skip
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    env = {"BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0", "BARID_SMTP__TRANSFER_PORT": "0",
           "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
           "BARID_HTTP__PORT": "0", "BARID_SMTP__MIN_FREE_DISK_MB": "0",
           # Tests make many forged lookups from 127.0.0.1; the radar's throttle is
           # tested on an app of its own (tests/verification/test_verification_radar.py).
           "BARID_HTTP__VERIFY_FAILURES_PER_10_MINUTES": "1000000"}  # fmt: skip
    settings = load_settings(data / "barid.toml", environ=env)
    gateway = Gateway(settings)
    await gateway.start()
    try:
        from keys.gateway_keys import load_gateway_keys

        keys = load_gateway_keys(settings.keys_dir)
        yield Live(gateway, keys, data, credentials, tls_client(settings.tls_cert))
    finally:
        await gateway.stop()
