"""What every client-configuration document is made from: the gateway's mail
endpoints (host, ports, TLS modes), the agency domain an address belongs to, and
the checked address itself.

Owns: address syntax for these lookups and the domain -> agency match. Must not:
do I/O or say whether an address exists (only whether its domain is an agency's).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.store.directory import DirectoryError, normalize_address, normalize_domain
from policies.directory import AgencyRecord, DirectorySnapshot

MAX_ADDRESS_CHARS = 320  # RFC 5321 §4.5.3.1: 64 + "@" + 255


class Security(enum.StrEnum):
    """How a client protects the connection: TLS from the first byte, or STARTTLS."""

    IMPLICIT = "implicit"  # RFC 8314 implicit TLS (IMAPS, SMTPS/submissions)
    STARTTLS = "starttls"


@dataclass(frozen=True, slots=True)
class Endpoint:
    protocol: str  # "imap" or "smtp"
    port: int
    security: Security


@dataclass(frozen=True, slots=True)
class MailEndpoints:
    """Where employees' clients connect: one host, four ports (docs/CONTRACT.md §10)."""

    hostname: str
    imaps_port: int
    imap_port: int
    smtps_port: int
    submission_port: int

    @property
    def incoming(self) -> tuple[Endpoint, Endpoint]:
        """IMAP endpoints, implicit TLS first (RFC 8314 §3.3 prefers it)."""
        return (
            Endpoint("imap", self.imaps_port, Security.IMPLICIT),
            Endpoint("imap", self.imap_port, Security.STARTTLS),
        )

    @property
    def outgoing(self) -> tuple[Endpoint, Endpoint]:
        """Submission endpoints, implicit TLS first (RFC 8314 §3.3)."""
        return (
            Endpoint("smtp", self.smtps_port, Security.IMPLICIT),
            Endpoint("smtp", self.submission_port, Security.STARTTLS),
        )


@dataclass(frozen=True, slots=True)
class MailDomain:
    """An agency mail domain as clients show it."""

    domain: str
    code: str  # the agency highest in the tree with this domain
    name_en: str
    name_ar: str

    @property
    def display_name(self) -> str:
        return f"{self.name_ar} - {self.name_en}"


class AddressError(ValueError):
    """Not a syntactically valid mail address; the message is safe to show."""


def parse_address(text: str) -> str:
    """The address, lower-cased; raises AddressError when it is not local@domain."""
    if len(text) > MAX_ADDRESS_CHARS:
        raise AddressError("the email address is too long")
    try:
        return normalize_address(text)
    except DirectoryError:
        raise AddressError("not a valid email address (expected local@domain)") from None


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[1]


def clean_domain(text: str) -> str | None:
    """A syntactically valid domain name, lower-cased, or None."""
    try:
        return normalize_domain(text)
    except DirectoryError:
        return None


def find_domain(snapshot: DirectorySnapshot, domain: str) -> MailDomain | None:
    """The agency domain `domain` names, or None when no agency uses it.

    Several agencies of one subtree may share a domain; the one nearest the root
    (then the smallest code) names it.
    """
    wanted = domain.lower().rstrip(".")
    matches = [a for a in snapshot.agencies.values() if a.domain.lower() == wanted]
    if not matches:
        return None
    top: AgencyRecord = min(
        matches, key=lambda a: (len(snapshot.ancestors.get(a.code, ())), a.code)
    )
    return MailDomain(domain=wanted, code=top.code, name_en=top.name_en, name_ar=top.name_ar)
