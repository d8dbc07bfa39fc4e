"""When the gateway's own credentials stop being valid: the TLS server certificate
and the key files (token signing, DKIM) it holds.

Owns: reading the certificate's subject and validity end, and describing each key
file (its key id or name, and since when the file has been as it is: created or
rotated). Keys have no expiry date of their own (`not_after` None); rotating them
is an operator's decision. Must not: read or return private key material, or
change any file.

Failure behaviour: a missing or unreadable certificate gives None (the caller
shows that it cannot be read); a key file that cannot be stat'ed has `since` None.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from keys.gateway_keys import (
    DKIM_ED25519_KEY_FILE,
    DKIM_RSA_KEY_FILE,
    RETIRED_SIGNING_DIR,
    SIGNING_KEY_FILE,
    GatewayKeys,
)

MAX_CERT_FILE = 1024 * 1024


@dataclass(frozen=True)
class Credential:
    kind: str  # tls | signing | signing-retired | dkim-rsa | dkim-ed25519
    name: str  # the certificate's subject CN, or the key id / file name
    not_after: dt.datetime | None  # None: no expiry date of its own
    since: dt.datetime | None  # the file's last change (created or rotated)


def _since(path: Path) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    except OSError:
        return None


def tls_certificate(path: Path) -> Credential | None:
    """The first certificate of the PEM chain at `path`, or None if unreadable."""
    try:
        if path.stat().st_size > MAX_CERT_FILE:
            return None
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else cert.subject.rfc4514_string()
    return Credential("tls", name, cert.not_valid_after_utc, _since(path))


def key_files(keys: GatewayKeys) -> list[Credential]:
    """The signing key (current, then retired ones) and the two DKIM keys."""
    directory = keys.directory
    found = [Credential("signing", keys.signing_key_id, None, _since(directory / SIGNING_KEY_FILE))]
    for kid in sorted(keys.retired_signing_keys):
        retired = directory / RETIRED_SIGNING_DIR / f"{kid}.pem"
        found.append(Credential("signing-retired", kid, None, _since(retired)))
    for kind, file in (("dkim-rsa", DKIM_RSA_KEY_FILE), ("dkim-ed25519", DKIM_ED25519_KEY_FILE)):
        found.append(Credential(kind, file, None, _since(directory / file)))
    return found
