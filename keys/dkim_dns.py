"""The DKIM key records a domain publishes for the gateway's DKIM keys.

Owns: the selector names, the TXT record values (RFC 6376 for RSA, RFC 8463 for
Ed25519) and their zone-file lines. Must not: load or create keys (that is
`keys.gateway_keys`) or query DNS.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from keys.gateway_keys import GatewayKeys

_DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# RFC 1035 §3.3.14: one character-string in a TXT record holds at most 255 octets.
_TXT_CHUNK = 255


@dataclass(frozen=True, slots=True)
class DkimRecord:
    """One DKIM key record: publish `value` as TXT at `name` (RFC 6376 §3.6.2)."""

    selector: str
    domain: str
    algorithm: str  # "rsa" (RFC 6376) or "ed25519" (RFC 8463)
    value: str

    @property
    def name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def zone_line(self) -> str:
        """The record as a zone-file line, the value split into 255-octet strings."""
        chunks = [self.value[i : i + _TXT_CHUNK] for i in range(0, len(self.value), _TXT_CHUNK)]
        quoted = " ".join(f'"{chunk}"' for chunk in chunks)
        return f"{self.name}. IN TXT {quoted}"


def dkim_selector(selector_prefix: str, algorithm: str) -> str:
    """The selector for one algorithm: `<prefix>-rsa` or `<prefix>-ed25519`."""
    if algorithm not in ("rsa", "ed25519"):
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
    selector = f"{selector_prefix.lower()}-{algorithm}"
    if not _DNS_LABEL_RE.fullmatch(selector):
        raise ValueError(f"invalid DKIM selector prefix {selector_prefix!r}")
    return selector


def _check_domain(domain: str) -> str:
    name = domain.strip().rstrip(".").lower()
    labels = name.split(".")
    if len(labels) < 2 or not all(_DNS_LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError(f"invalid mail domain {domain!r}")
    return name


def dkim_records(keys: GatewayKeys, selector_prefix: str, domain: str) -> list[DkimRecord]:
    """The RSA and Ed25519 DKIM key records for `domain`."""
    domain = _check_domain(domain)
    rsa_der = keys.dkim_rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ed_raw = keys.dkim_ed25519_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return [
        DkimRecord(
            selector=dkim_selector(selector_prefix, "rsa"),
            domain=domain,
            algorithm="rsa",
            value=f"v=DKIM1; k=rsa; p={base64.b64encode(rsa_der).decode('ascii')}",
        ),
        DkimRecord(
            selector=dkim_selector(selector_prefix, "ed25519"),
            domain=domain,
            algorithm="ed25519",
            value=f"v=DKIM1; k=ed25519; p={base64.b64encode(ed_raw).decode('ascii')}",
        ),
    ]


def dkim_dns_records(keys: GatewayKeys, selector_prefix: str, domain: str) -> list[str]:
    """Zone-file lines for the DKIM TXT records (what `barid dkim dns` prints)."""
    return [record.zone_line() for record in dkim_records(keys, selector_prefix, domain)]
