"""Two federated gateways on loopback, for tests and the relay benchmark: "central"
(the demo government) and "region" (`barid init` + agency REG).

Each has its own data directory, keys, TLS certificate, database, directory and
policy; each trusts the other's certificate (pinned) and DKIM records, as two
operators would after exchanging trust anchors. Transfer ports are picked before
start-up because each side's configuration names the other's. No fixtures here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import load_settings
from gateway.serve import Gateway
from keys.dkim_dns import dkim_records
from keys.gateway_keys import load_gateway_keys
from testkit.cli import run_cli
from testkit.gateway import Live, tls_client

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
# Central writes to the region's registry only (the tests).
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
# Central writes to every employee of agency REG (the relay benchmark's many recipients).
REGION_AGENCY_POLICY = (
    "version: 1\nroles: [registrar, clerk]\n"
    + _DEFAULT
    + """rules:
  - id: central-to-region
    description: Central writes to the region's staff.
    sender: {peer: central}
    recipient: {agency: REG}
    effect: allow
"""
)
# Both gateways in one process: every listener but the transfer port on a free
# port, a quick delivery retry.
GATEWAY_ENV = {
    "BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0",
    "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0", "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0",
    "BARID_SMTP__MIN_FREE_DISK_MB": "0",
    "BARID_DELIVERY__RETRY_FIRST_SECONDS": "0.3", "BARID_DELIVERY__RETRY_MAX_SECONDS": "1",
    "BARID_DELIVERY__TIMEOUT_SECONDS": "10",
}  # fmt: skip


def make_region(data: Path) -> None:
    """A second government in `data`: `barid init` and one agency, REG."""
    run_cli(None, "init", "--data-dir", str(data))
    run_cli(data, "agency", "add", "REG", "--name-en", "Regional Government", "--name-ar",
            "حكومة الإقليم", "--kind", "region", "--domain", REGION_DOMAIN)  # fmt: skip


def add_region_people(data: Path) -> None:
    """REGION_PEOPLE (a registrar and a clerk) with password PASSWORD."""
    for address, (role, clearance) in REGION_PEOPLE.items():
        run_cli(data, "employee", "add", address, "--agency", "REG", "--name-en", role.title(),
                "--role", role, "--clearance", clearance, "--password-stdin", stdin=PASSWORD)  # fmt: skip


def import_region_staff(data: Path, addresses: Sequence[str]) -> None:
    """Clerks of agency REG at `addresses`, by one `barid directory import`."""
    rows = ["type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance"]
    rows += [f"employee,,Staff {n},,,,,{a},REG,clerk,internal" for n, a in enumerate(addresses)]
    csv_file = data.parent / "region-staff.csv"
    csv_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run_cli(data, "directory", "import", str(csv_file))


def dkim_file(keys_dir: Path, domains: list[str], out: Path) -> Path:
    """The DKIM zone lines of the gateway keys in `keys_dir` for `domains`, in `out`."""
    keys = load_gateway_keys(keys_dir)
    lines = [r.zone_line() for d in domains for r in dkim_records(keys, "barid", d)]
    out.write_text("\n".join(lines) + "\n")
    return out


def configure(data: Path, policy: str, peer: str, table: dict[str, Any]) -> None:
    """Write `policy` and replace barid.toml's `[peers.*]` with `[peers.PEER]` = table."""
    (data / "policies.yaml").write_text(policy, encoding="utf-8")
    config = data / "barid.toml"
    text = config.read_text(encoding="utf-8")
    keep = text.split("\n[peers.", 1)[0].rstrip("\n")
    lines = [keep, "", f"[peers.{peer}]"]
    for key, value in table.items():
        if isinstance(value, list):
            lines.append(f"{key} = [{', '.join(json.dumps(v) for v in value)}]")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f"{key} = {json.dumps(str(value))}")
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def configure_central(central: Path, region: Path, region_port: int, work: Path) -> None:
    """Central names region (at 127.0.0.1:region_port) as its peer."""
    configure(central, CENTRAL_POLICY, "region", {
        "domains": [REGION_DOMAIN], "host": "127.0.0.1", "port": region_port,
        "tls_trust": str(region / "tls" / "cert.pem"),
        "dkim_keys": str(dkim_file(region / "keys", [REGION_DOMAIN], work / "r-dkim.txt")),
        "tls_server_name": "localhost",
    })  # fmt: skip


def configure_region(region: Path, central: Path, central_port: int, work: Path,
                     policy: str = REGION_POLICY) -> None:  # fmt: skip
    """Region names central (at 127.0.0.1:central_port) as its peer."""
    configure(region, policy, "central", {
        "domains": CENTRAL_DOMAINS, "host": "127.0.0.1", "port": central_port,
        "tls_trust": str(central / "tls" / "cert.pem"),
        "dkim_keys": str(dkim_file(central / "keys", CENTRAL_DOMAINS, work / "c-dkim.txt")),
        "tls_server_name": "localhost",
    })  # fmt: skip


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
