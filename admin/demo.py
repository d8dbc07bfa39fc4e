"""`barid demo`: a small government in one data directory, ready to try.

Owns: the demo directory (a cabinet secretariat, two ministries with a
directorate each, a governorate), demo passwords and key material, and the
printed guide. Must not: be used for real agencies; the passwords it prints
are stored in <data_dir>/demo/credentials.json (mode 0600) so a re-run shows
them again instead of making new ones.
"""

from __future__ import annotations

import json
import secrets
import shutil
import string
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from admin.context import open_app
from admin.demo_admin import make_demo_administrator
from admin.demo_data import AGENCIES, EMPLOYEES
from admin.demo_letter import DemoLetterError, build_letter
from admin.errors import CliError
from gateway.config import Settings
from gateway.store.directory import Directory, DirectoryError, EmployeeInput
from keys import passwords
from keys.demo_material import (
    make_ca,
    make_openpgp_key,
    make_smime_certificate,
    stop_gpg_agent,
    write_certificate_pem,
    write_pkcs12,
    write_private_key_pem,
    write_secret_bytes,
)
from keys.identities import inspect_identity
from keys.key_files import PUBLIC_FILE_MODE, write_new_file
from policies.directory import EmployeeStatus

ACTOR = "demo"
LETTER_FROM = "minister@moh.gov.example"
LETTER_TO = "minister@mof.gov.example"
LETTER_FILE = "welcome.eml"


def barid_command() -> str:
    """How to call `barid` from another terminal: the bare name when it is on PATH,
    otherwise the full path of the one beside this interpreter (e.g. .venv/bin)."""
    beside = Path(sys.executable).parent / "barid"
    on_path = shutil.which("barid")
    if on_path and Path(on_path).resolve() == beside.resolve():
        return "barid"
    return str(beside) if beside.exists() else "barid"


@dataclass
class DemoSummary:
    data_dir: Path
    http_url: str
    admin_url: str = "https://127.0.0.1:8443"
    smtp_host: str = "127.0.0.1"
    submission_port: int = 5870
    smtps_port: int = 4650
    imap_host: str = "127.0.0.1"
    imap_port: int = 1430
    imaps_port: int = 9930
    employees: list[dict[str, Any]] = field(default_factory=list)
    administrator: dict[str, Any] = field(default_factory=dict)
    created: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "http": self.http_url,
            "admin": self.admin_url,
            "smtp": {
                "host": self.smtp_host,
                "submission_port": self.submission_port,
                "submission_security": "STARTTLS",
                "smtps_port": self.smtps_port,
                "smtps_security": "TLS",
                "authentication": "PLAIN or LOGIN, user name = the mail address",
                "tls_certificate": str(self.data_dir / "tls" / "cert.pem"),
            },
            "imap": {
                "host": self.imap_host,
                "port": self.imap_port,
                "security": "STARTTLS",
                "imaps_port": self.imaps_port,
                "imaps_security": "TLS",
                "authentication": "normal password (LOGIN or AUTHENTICATE PLAIN)",
                "folders": ["INBOX", "Sent", "Drafts", "Trash", "Receipts"],
            },
            "try_it": self.loop_commands(),
            "employees": self.employees,
            "administrator": self.administrator,
            "created": self.created,
        }

    @property
    def cert(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"

    def _password(self, address: str) -> str:
        for emp in self.employees:
            if emp["address"] == address:
                return str(emp["password"])
        return "<password>"

    def loop_commands(self) -> dict[str, str]:
        """Shell commands for the whole loop: send the signed sample letter, read it
        as the recipient, read the sender's receipts."""
        letter = self.data_dir / "demo" / "letters" / LETTER_FILE
        imap = f"imap://{self.imap_host}:{self.imap_port}"
        return {
            "send": (
                f"swaks --server {self.smtp_host}:{self.submission_port} --tls --tls-verify"
                f" --tls-ca-path {self.cert} --auth PLAIN --auth-user {LETTER_FROM}"
                f" --auth-password '{self._password(LETTER_FROM)}'"
                f" --from {LETTER_FROM} --to {LETTER_TO} --data @{letter}"
            ),
            "read": (
                f"curl -sS --ssl-reqd --cacert {self.cert}"
                f" --user '{LETTER_TO}:{self._password(LETTER_TO)}' '{imap}/INBOX;UID=1'"
            ),
            "receipts": (
                f"curl -sS --ssl-reqd --cacert {self.cert}"
                f" --user '{LETTER_FROM}:{self._password(LETTER_FROM)}'"
                f" '{imap}/Receipts;UID=2'"
            ),
            "access": f"{barid_command()} audit access --config {self.data_dir / 'barid.toml'}",
        }

    def _administrator_lines(self) -> list[str]:
        admin = self.administrator
        if not admin:
            return []
        return [
            f"web admin:      {self.admin_url}/admin/ as {admin['address']} (system-admin):"
            f" its password below and a TOTP code from the secret {admin['totp_secret']}"
            f" (add it to an authenticator app, or: oathtool --totp -b {admin['totp_secret']});"
            f" recovery codes in {self.data_dir / 'demo' / 'administrator.json'}",
        ]

    def text(self) -> str:
        lines = [
            "Barid demo" + (" (created)" if self.created else " (already set up)"),
            f"data directory: {self.data_dir}",
            f"health:         {self.http_url}/healthz",
            f"admin API:      {self.admin_url}/api/v1/ (HTTPS; docs/ADMIN.md;"
            " Prometheus metrics at /metrics with an admin token)",
            *self._administrator_lines(),
            "",
            "Mail client settings (outgoing / SMTP):",
            f"  server {self.smtp_host}, port {self.submission_port} with STARTTLS"
            f" (or {self.smtps_port} with TLS); authentication PLAIN/LOGIN;"
            " user name = the employee's address",
            f"  the server's certificate (self-signed, trust it in the client):"
            f" {self.data_dir / 'tls' / 'cert.pem'}",
            "  every message needs a document signed with the employee's key (PGP/MIME,"
            " S/MIME, or a .asc/.p7s file beside it) and the employee code in the signing"
            " key or a Barid-Employee-Code header",
            "",
            "Mail client settings (incoming / IMAP):",
            f"  server {self.imap_host}, port {self.imap_port} with STARTTLS"
            f" (or {self.imaps_port} with TLS); normal password; user name = the"
            " employee's address; folders INBOX, Sent, Drafts, Trash, Receipts",
            "",
            "Try the whole loop from another terminal (swaks and curl):",
        ]
        commands = self.loop_commands()
        lines += [
            f"  1. send the signed sample letter as {LETTER_FROM}:",
            f"     {commands['send']}",
            f"  2. read it as {LETTER_TO}:",
            f"     {commands['read']}",
            f"     every body fetch is in the access trail: {commands['access']}",
            "  3. the sender's delivery receipt (UID=1 is the acceptance receipt; the"
            " letter itself is in the sender's Sent folder):",
            f"     {commands['receipts']}",
            "",
            "Demo employees (address / password / employee code / key files):",
        ]
        for emp in self.employees:
            lines.append(
                f"  {emp['address']}  ({emp['agency']}, {emp['role']}, {emp['clearance']})"
            )
            lines.append(f"    password: {emp['password']}")
            lines.append(f"    code:     {emp['code']}")
            for label, path in emp["key_files"].items():
                lines.append(f"    {label}: {path}")
        return "\n".join(lines)


async def build_demo(settings: Settings) -> DemoSummary:
    demo_dir = settings.data_dir / "demo"
    credentials_file = demo_dir / "credentials.json"
    administrator_file = demo_dir / "administrator.json"
    summary = _summary_for(settings)
    if credentials_file.exists():
        summary.employees = json.loads(credentials_file.read_text(encoding="utf-8"))
        if administrator_file.exists():
            summary.administrator = json.loads(administrator_file.read_text(encoding="utf-8"))
        return summary

    if shutil.which("gpg") is None:
        raise CliError("the demo makes OpenPGP keys with gpg: install it (apt-get install gnupg)")
    demo_dir.mkdir(mode=0o700, exist_ok=True)
    key_dir = demo_dir / "keys"
    key_dir.mkdir(mode=0o700, exist_ok=True)
    gnupghome = Path(tempfile.mkdtemp(prefix="bd", dir="/tmp"))
    try:
        async with open_app(settings) as app:
            summary.employees = await _populate(app.directory, gnupghome, key_dir)
            summary.administrator = await make_demo_administrator(app)
            _write_welcome_letter(gnupghome, demo_dir, summary.employees)
    except DemoLetterError as exc:
        raise CliError(str(exc)) from None
    except DirectoryError as exc:
        raise CliError(
            f"the data directory already holds a directory that is not the demo's ({exc});"
            " use a fresh --data-dir"
        ) from None
    finally:
        stop_gpg_agent(gnupghome)
        shutil.rmtree(gnupghome, ignore_errors=True)
    write_secret_bytes(
        administrator_file, json.dumps(summary.administrator, indent=2).encode("utf-8")
    )
    write_secret_bytes(
        credentials_file,
        json.dumps(summary.employees, ensure_ascii=False, indent=2).encode("utf-8"),
    )
    summary.created = True
    return summary


def _summary_for(settings: Settings) -> DemoSummary:
    return DemoSummary(
        data_dir=settings.data_dir,
        http_url=f"http://{settings.http.listen}:{settings.http.port}",
        admin_url=f"https://{settings.http.admin_address}:{settings.http.admin_port}",
        smtp_host=settings.smtp.listen,
        submission_port=settings.smtp.submission_port,
        smtps_port=settings.smtp.smtps_port,
        imap_host=settings.imap.listen,
        imap_port=settings.imap.port,
        imaps_port=settings.imap.imaps_port,
    )


@dataclass(frozen=True, slots=True)
class _DemoCa:
    """The demo agency CA that issues the S/MIME certificates, and its PEM file."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    path: Path


async def _populate(directory: Directory, gnupghome: Path, key_dir: Path) -> list[dict[str, Any]]:
    """Add the demo agencies, trust the demo CA, add each employee with their keys."""
    for agency in AGENCIES:
        await directory.add_agency(agency, actor=ACTOR)
    ca = await _trust_demo_ca(directory, key_dir)
    return [await _add_employee(directory, row, gnupghome, key_dir, ca) for row in EMPLOYEES]


async def _trust_demo_ca(directory: Directory, key_dir: Path) -> _DemoCa:
    ca_key, ca_cert = make_ca("MOH Demo Agency CA")
    ca_path = key_dir / "moh-ca.pem"
    write_certificate_pem(ca_path, ca_cert)
    await directory.trust_ca(
        "MOH",
        fingerprint=ca_cert.fingerprint(hashes.SHA256()).hex().upper(),
        subject=ca_cert.subject.rfc4514_string(),
        pem=ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        actor=ACTOR,
    )
    return _DemoCa(ca_key, ca_cert, ca_path)


_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def demo_password() -> str:
    """16 random letters and digits (95 bits): safe to paste into any command line
    (a password starting with "-" reads as an option to swaks, curl and others)."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(16))


async def _add_employee(
    directory: Directory,
    row: tuple[str, str, str, str, str, str, str, bool],
    gnupghome: Path,
    key_dir: Path,
    ca: _DemoCa,
) -> dict[str, Any]:
    """One employee with a fresh password, an OpenPGP key and, if asked, S/MIME."""
    address, agency_code, name_en, name_ar, role, clearance, status, smime = row
    password = demo_password()
    added = await directory.add_employee(
        EmployeeInput(
            address,
            agency_code,
            name_en,
            name_ar,
            role,
            clearance,
            passwords.hash_password(password),
        ),
        actor=ACTOR,
    )
    if status != "active":
        await directory.set_status(address, EmployeeStatus(status), actor=ACTOR)
    local = address.split("@")[0] + "-" + agency_code.lower()
    code = added["code"]
    who = (name_en, address, code)
    files = await _add_openpgp_identity(directory, gnupghome, key_dir / local, who)
    if smime:
        files |= await _add_smime_identity(directory, ca, key_dir / local, who, password)
    return {
        "address": address,
        "agency": agency_code,
        "role": role,
        "clearance": clearance,
        "status": status,
        "password": password,
        "code": code,
        "key_files": files,
    }


async def _add_openpgp_identity(
    directory: Directory, gnupghome: Path, stem: Path, who: tuple[str, str, str]
) -> dict[str, str]:
    """Make the employee's OpenPGP key, write both halves, register the public key.

    `stem` is the key directory joined with the employee's file name prefix; `who` is
    (name, address, employee code).
    """
    name, address, code = who
    fpr, public, secret = make_openpgp_key(gnupghome, name, address, code)
    pub_path, sec_path = _beside(stem, ".pub.asc"), _beside(stem, ".sec.asc")
    write_new_file(pub_path, public, PUBLIC_FILE_MODE)
    write_secret_bytes(sec_path, secret)
    await directory.add_identity(
        address, kind="openpgp", fingerprint=fpr, material=public.decode("ascii"), actor=ACTOR
    )
    return {"openpgp public key": str(pub_path), "openpgp secret key": str(sec_path)}


async def _add_smime_identity(
    directory: Directory,
    ca: _DemoCa,
    stem: Path,
    who: tuple[str, str, str],
    password: str,
) -> dict[str, str]:
    """Issue the employee's S/MIME certificate, write it with a .p12 bundle, register it.

    `stem` and `who` as for `_add_openpgp_identity`; the bundle is locked with `password`.
    """
    name, address, code = who
    key, cert = make_smime_certificate(ca.key, ca.cert, name, address, code)
    cert_path, key_path = _beside(stem, ".cert.pem"), _beside(stem, ".key.pem")
    write_certificate_pem(cert_path, cert)
    write_private_key_pem(key_path, key)
    p12_path = _beside(stem, ".p12")
    write_pkcs12(p12_path, key, cert, ca.cert, password)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    await directory.add_identity(
        address,
        kind="x509",
        fingerprint=inspect_identity(pem).fingerprint,
        material=pem.decode("ascii"),
        actor=ACTOR,
    )
    return {
        "s/mime certificate": str(cert_path),
        "s/mime private key": str(key_path),
        "s/mime bundle for mail clients (.p12, login password)": str(p12_path),
        "agency ca": str(ca.path),
    }


def _beside(stem: Path, suffix: str) -> Path:
    """`stem` with `suffix` appended to its last part: keys/alice-moh + .p12."""
    return stem.with_name(stem.name + suffix)


def _write_welcome_letter(gnupghome: Path, demo_dir: Path, employees: list[dict[str, Any]]) -> None:
    letter = build_letter(
        gnupghome,
        sender=LETTER_FROM,
        recipient=LETTER_TO,
        sender_code=next(e["code"] for e in employees if e["address"] == LETTER_FROM),
        domain=LETTER_FROM.rpartition("@")[2],
    )
    letters = demo_dir / "letters"
    letters.mkdir(mode=0o700, exist_ok=True)
    write_secret_bytes(letters / LETTER_FILE, letter)
