"""An agency's own IMAP server as configured, and what one APPEND attempt came to.

Owns: `ImapServer` (checked at construction: TLS only, printable ASCII, no
wildcards in the folder; the LOGIN template; the verifying TLS context),
`AppendOutcome`, and the checks of a recipient and a trace code before they
reach an IMAP command. Must not: connect anywhere (imap_target.py does).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PRINTABLE = re.compile(r"^[\x20-\x7e]+$")


@dataclass(frozen=True)
class ImapServer:
    """An agency's IMAP server; validated at construction (ValueError)."""

    name: str  # configuration name, for logs/errors
    host: str
    port: int
    tls: Literal["implicit", "starttls"]  # never plaintext
    ca_file: Path | None  # PEM trust anchors for the server certificate; None: the system's
    server_name: str  # name checked against the certificate ("" = host)
    login: str  # template: "{address}" / "{local}" replaced, e.g. "{address}*barid"
    password: str  # never logged, never in an outcome's detail
    folder: str = "INBOX"
    timeout: float = 30.0  # whole operation bound

    def __post_init__(self) -> None:
        for field in ("name", "host", "login", "folder"):
            value = getattr(self, field)
            if not isinstance(value, str) or not PRINTABLE.match(value):
                raise ValueError(f"IMAP server {field} must be non-empty printable ASCII")
        if self.server_name and not PRINTABLE.match(self.server_name):
            raise ValueError("IMAP server_name must be printable ASCII")
        if self.tls not in ("implicit", "starttls"):
            raise ValueError(
                f"IMAP server {self.name}: tls must be 'implicit' or 'starttls' (no plaintext)"
            )
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"IMAP server {self.name}: port must be an integer")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"IMAP server {self.name}: port must be 1..65535")
        if not isinstance(self.password, str) or not PRINTABLE.match(self.password):
            raise ValueError(f"IMAP server {self.name}: password must be non-empty printable ASCII")
        if any(ch in self.folder for ch in '*%"\\'):
            raise ValueError(f'IMAP server {self.name}: folder must not contain * % " or \\')
        if not self.timeout > 0:
            raise ValueError(f"IMAP server {self.name}: timeout must be positive")
        if self.ca_file is not None and not isinstance(self.ca_file, Path):
            raise ValueError(f"IMAP server {self.name}: ca_file must be a Path or None")

    def login_for(self, recipient: str) -> str:
        """The LOGIN user name for `recipient` (template filled by plain replacement)."""
        local = recipient.rsplit("@", 1)[0]
        return self.login.replace("{address}", recipient).replace("{local}", local)

    def tls_context(self) -> ssl.SSLContext:
        """CERT_REQUIRED, hostname checked, TLS >= 1.2; OSError/SSLError if ca_file is bad."""
        if self.ca_file is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        else:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


@dataclass(frozen=True)
class AppendOutcome:
    kind: Literal["delivered", "temporary", "permanent"]
    detail: str  # one ASCII line, e.g. "APPEND NO [TRYCREATE] ..."; no secrets
    remote: str  # host name for reports


def check_recipient(recipient: str) -> None:
    if (
        not isinstance(recipient, str)
        or not PRINTABLE.match(recipient)
        or " " in recipient
        or recipient.count("@") != 1
        or recipient.startswith("@")
        or recipient.endswith("@")
        or any(ch in recipient for ch in '"\\')
    ):
        raise ValueError("recipient must be one ASCII address local@domain")


def check_trace(trace_code: str) -> None:
    if (
        not isinstance(trace_code, str)
        or not PRINTABLE.match(trace_code)
        or len(trace_code) > 64
        or any(ch in trace_code for ch in '"\\ ')
    ):
        raise ValueError("trace_code must be 1-64 printable ASCII characters, no quotes or spaces")
