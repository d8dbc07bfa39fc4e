"""Two federated gateways on loopback: "central" (the demo government) and "region".

Each has its own data directory, keys, TLS certificate, database, directory and
policy; each trusts the other's certificate (pinned) and DKIM records, as two
operators would after exchanging trust anchors. Transfer ports are picked before
start-up because each side's configuration names the other's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from live_gateway import Live, tls_client

from gateway.config import load_settings
from gateway.serve import Gateway
from keys.dkim_dns import dkim_records
from keys.gateway_keys import load_gateway_keys

CENTRAL_DOMAINS = ["cab.gov.example", "moh.gov.example", "mof.gov.example", "gov-bsr.gov.example"]
REGION_DOMAIN = "region.gov.example"
REGION_PEOPLE = {
    "registry@region.gov.example": ("registrar", "confidential"),
    "clerk@region.gov.example": ("clerk", "internal"),
}
PASSWORD = "region-test-password-1"
_DEFAULT = """default:
  effect: deny
  reason:
    en: No routing policy allows this.
    ar: لا توجد سياسة توجيه تسمح بذلك.
"""
CENTRAL_POLICY = (
    "version: 1\nroles: [minister, director, clerk, registrar]\n"
    + _DEFAULT
    + """rules:
  - id: registrars-to-region
    description: Registrars write to the region.
    sender: {role: registrar}
    recipient: {peer: region}
    effect: allow
"""
)
REGION_POLICY = (
    "version: 1\nroles: [registrar, clerk]\n"
    + _DEFAULT
    + """rules:
  - id: central-to-registry
    description: Central writes to the registry.
    sender: {peer: central}
    recipient: {address: registry@region.gov.example}
    effect: allow
"""
)


def _cli(data: Path, *args: str, stdin: str = "") -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env["BARID_CONFIG"] = str(data / "barid.toml")
    subprocess.run([sys.executable, "-m", "admin", *args], check=True, capture_output=True,
                   timeout=120, env=env, input=stdin.encode())  # fmt: skip


@pytest.fixture(scope="session")
def region_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second government: one agency (region.gov.example), a registrar and a clerk."""
    data = tmp_path_factory.mktemp("region") / "d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    subprocess.run([sys.executable, "-m", "admin", "init", "--data-dir", str(data)], check=True,
                   capture_output=True, timeout=120, env=env)  # fmt: skip
    _cli(data, "agency", "add", "REG", "--name-en", "Regional Government", "--name-ar",
         "حكومة الإقليم", "--kind", "region", "--domain", REGION_DOMAIN)  # fmt: skip
    for address, (role, clearance) in REGION_PEOPLE.items():
        _cli(data, "employee", "add", address, "--agency", "REG", "--name-en", role.title(),
             "--role", role, "--clearance", clearance, "--password-stdin", stdin=PASSWORD)  # fmt: skip
    return data


def _dkim_file(keys_dir: Path, domains: list[str], out: Path) -> Path:
    keys = load_gateway_keys(keys_dir)
    lines = [r.zone_line() for d in domains for r in dkim_records(keys, "barid", d)]
    out.write_text("\n".join(lines) + "\n")
    return out


def _configure(data: Path, policy: str, peer: str, table: dict[str, Any]) -> None:
    (data / "policies.yaml").write_text(policy, encoding="utf-8")
    config = data / "barid.toml"
    text = config.read_text(encoding="utf-8")
    keep = text.split("\n[peers.", 1)[0].rstrip("\n")
    lines = [keep, "", f"[peers.{peer}]"]
    for key, value in table.items():
        if isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(v).replace(chr(39), chr(34)) for v in value)}]")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f'{key} = "{value}"')
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


GATEWAY_ENV = {
    "BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0",
    "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0", "BARID_HTTP__PORT": "0",
    "BARID_SMTP__MIN_FREE_DISK_MB": "0",
    "BARID_DELIVERY__RETRY_FIRST_SECONDS": "0.3", "BARID_DELIVERY__RETRY_MAX_SECONDS": "1",
    "BARID_DELIVERY__TIMEOUT_SECONDS": "10",
}  # fmt: skip


@dataclass
class Pair:
    central_data: Path
    region_data: Path
    central_port: int
    region_port: int
    credentials: dict[str, dict[str, Any]]
    started: list[Live]

    async def start(self, which: str, **env: str) -> Live:
        data = self.central_data if which == "central" else self.region_data
        port = self.central_port if which == "central" else self.region_port
        settings = load_settings(
            data / "barid.toml",
            environ={**GATEWAY_ENV, "BARID_SMTP__TRANSFER_PORT": str(port), **env},
        )
        gateway = Gateway(settings)
        try:
            await gateway.start()
        except BaseException:
            await gateway.stop()
            raise
        creds = self.credentials if which == "central" else {
            a: {"password": PASSWORD} for a in REGION_PEOPLE
        }  # fmt: skip
        live = Live(gateway, load_gateway_keys(settings.keys_dir), data, creds,
                    tls_client(settings.tls_cert))  # fmt: skip
        self.started.append(live)
        return live

    async def stop(self, live: Live) -> None:
        await live.gateway.stop()
        self.started.remove(live)


@pytest.fixture
async def pair(
    demo_template: Path,
    region_template: Path,
    tmp_path: Path,
    credentials: dict[str, dict[str, Any]],
    port_factory: Callable[[], int],
) -> AsyncIterator[Pair]:
    central, region = tmp_path / "central", tmp_path / "region"
    shutil.copytree(demo_template, central)
    shutil.copytree(region_template, region)
    central_port, region_port = port_factory(), port_factory()
    _configure(central, CENTRAL_POLICY, "region", {
        "domains": [REGION_DOMAIN], "host": "127.0.0.1", "port": region_port,
        "tls_trust": str(region / "tls" / "cert.pem"),
        "dkim_keys": str(_dkim_file(region / "keys", [REGION_DOMAIN], tmp_path / "r-dkim.txt")),
        "tls_server_name": "localhost",
    })  # fmt: skip
    _configure(region, REGION_POLICY, "central", {
        "domains": CENTRAL_DOMAINS, "host": "127.0.0.1", "port": central_port,
        "tls_trust": str(central / "tls" / "cert.pem"),
        "dkim_keys": str(_dkim_file(central / "keys", CENTRAL_DOMAINS, tmp_path / "c-dkim.txt")),
        "tls_server_name": "localhost",
    })  # fmt: skip
    pair = Pair(central, region, central_port, region_port, credentials, [])
    try:
        yield pair
    finally:
        for live in list(pair.started):
            await pair.stop(live)
