"""Whom a federation peer is: its TLS trust anchors, pins, and the mutual-TLS contexts.

Owns: reading a peer's trust file (`tls_trust`: the peer's own certificate(s), pinned,
or its CA certificate(s)) and its configured SHA-256 pins (`tls_fingerprints`);
deciding whether a presented leaf certificate belongs to a peer (`PeerTrust.accepts`,
`identify`); building the `ssl.SSLContext`s of the transfer port (server side, client
certificate required) and of connections to one peer (client side, our certificate
presented). Must not: open sockets, read configuration files other than the trust
file, or decide what a peer may send (that is the listener's and the policy's job).

Contract:
- Every certificate in the trust file is an anchor. Anchors with BasicConstraints
  ca=True are CAs; every other anchor is a pin (its fingerprint is accepted as is).
  Configured fingerprints are added to the pins and make them strict: then only a
  pinned certificate is accepted, whatever a CA issued.
- A CA must issue the peer's gateway certificate directly: intermediates are not
  supported (`accepts` checks `verify_directly_issued_by` against each CA anchor).
- OpenSSL validates the chain during the handshake against the anchors, with
  X509_V_FLAG_PARTIAL_CHAIN so that a pinned certificate is a trust anchor even
  when it is not self-signed (or is self-signed with CA:FALSE). The application
  then calls `identify`/`accepts` on the presented leaf, which is the authoritative
  decision (pins, direct issuance, validity period).
- Fingerprints are SHA-256 over the DER certificate, lower-case hex without colons.
- Errors about files are `TrustError` (a ValueError) naming the peer and the file;
  our own certificate/key problems are `keys.tls.TlsFileError`.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from keys.tls import TlsFileError, load_server_context

log = logging.getLogger("barid.federation")

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PEM_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"


class TrustError(ValueError):
    """A peer's trust material is missing or unusable; the message names the file."""


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate: lower-case hex, no colons."""
    return hashlib.sha256(der).hexdigest()


def parse_fingerprint(text: str) -> str:
    """The canonical form of a SHA-256 fingerprint as people write it.

    Accepts "AB:CD:…", "abcd…", "sha256:…" and OpenSSL's "SHA256 Fingerprint=AB:…";
    raises ValueError unless 64 hex digits remain.
    """
    value = text.strip()
    if "=" in value and value.lower().replace(" ", "").startswith("sha256fingerprint="):
        value = value.split("=", 1)[1]
    elif value.lower().startswith("sha256:"):
        value = value[len("sha256:") :]
    value = value.strip().replace(":", "").lower()
    if not _HEX64.fullmatch(value):
        raise ValueError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits)")
    return value


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _valid_at(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


@dataclass(frozen=True)
class PeerTrust:
    """What identifies one peer gateway on the wire."""

    name: str
    anchors: tuple[x509.Certificate, ...]
    pins: frozenset[str]
    cas: tuple[x509.Certificate, ...]
    server_name: str
    strict_pins: bool

    def accepts(self, leaf_der: bytes, now: datetime.datetime | None = None) -> bool:
        """Whether the presented leaf certificate (DER) is this peer's.

        The leaf must be within its validity period. With strict pins its fingerprint
        must be pinned; otherwise it must be pinned or, not being a CA itself, issued
        directly by one of the CA anchors (itself within its validity period).
        Intermediates are not supported.
        """
        now = now or datetime.datetime.now(datetime.UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=datetime.UTC)
        try:
            leaf = x509.load_der_x509_certificate(leaf_der)
        except ValueError:
            return False
        if not _valid_at(leaf, now):
            return False
        if fingerprint(leaf_der) in self.pins:
            return True
        if self.strict_pins or _is_ca(leaf):
            return False
        for ca in self.cas:
            if not _valid_at(ca, now):
                continue
            try:
                leaf.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
        return False

    def pinned_mode(self) -> bool:
        """No CA anchors: the peer is identified by its exact certificate, not by a name."""
        return not self.cas

    def describe(self) -> list[dict[str, str]]:
        """Per anchor: subject, fingerprint, not_after (ISO 8601, UTC), kind "ca"/"pinned"."""
        return [
            {
                "subject": cert.subject.rfc4514_string(),
                "fingerprint": fingerprint(_der(cert)),
                "not_after": cert.not_valid_after_utc.isoformat(),
                "kind": "ca" if _is_ca(cert) else "pinned",
            }
            for cert in self.anchors
        ]

    def anchors_pem(self) -> bytes:
        """Every anchor as PEM, in trust-file order."""
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in self.anchors)


def _read_trust_file(name: str, trust_file: Path) -> tuple[x509.Certificate, ...]:
    where = f"{trust_file}: peer {name}: TLS trust file"
    try:
        data = trust_file.read_bytes()
    except FileNotFoundError:
        raise TrustError(f"{where} not found") from None
    except IsADirectoryError:
        raise TrustError(f"{where} is a directory, not a PEM file") from None
    except OSError as exc:
        raise TrustError(f"{where} cannot be read: {exc.strerror}") from None
    if b"PRIVATE KEY-----" in data:
        raise TrustError(
            f"{where} contains a private key; it must hold only the peer's certificates"
        )
    if _PEM_CERT_BEGIN not in data:
        raise TrustError(f"{where} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TrustError(f"{where} holds a malformed PEM certificate") from None
    unique: dict[str, x509.Certificate] = {}
    for cert in certs:
        unique.setdefault(fingerprint(_der(cert)), cert)
    return tuple(unique.values())


def load_peer_trust(
    name: str, trust_file: Path, fingerprints: Sequence[str], server_name: str
) -> PeerTrust:
    """The trust for peer `name` from its trust file and configured fingerprints.

    Raises TrustError naming the file when it is missing, unreadable, holds no
    certificate or a malformed one (or a private key); naming the peer when a
    fingerprint is malformed, or when the file holds a CA but `server_name` is empty
    (CA mode checks the name in the peer's certificate).
    """
    trust_file = Path(trust_file)
    anchors = _read_trust_file(name, trust_file)
    configured: set[str] = set()
    for text in fingerprints:
        try:
            configured.add(parse_fingerprint(text))
        except ValueError as exc:
            raise TrustError(f"peer {name}: tls_fingerprints: {exc}") from None
    cas = tuple(cert for cert in anchors if _is_ca(cert))
    pins = {fingerprint(_der(cert)) for cert in anchors if not _is_ca(cert)} | configured
    server_name = server_name.strip().rstrip(".").lower()
    if cas and not server_name:
        raise TrustError(
            f"{trust_file}: peer {name}: the trust file holds a CA certificate, so"
            " tls_server_name (the name in the peer's certificate) is required"
        )
    return PeerTrust(
        name=name,
        anchors=anchors,
        pins=frozenset(pins),
        cas=cas,
        server_name=server_name,
        strict_pins=bool(configured),
    )


def identify(trusts: Sequence[PeerTrust], leaf_der: bytes) -> PeerTrust | None:
    """The one peer whose trust accepts the leaf; None if none does, or several do."""
    accepting = [trust for trust in trusts if trust.accepts(leaf_der)]
    names = {trust.name for trust in accepting}
    if len(names) > 1:
        log.warning(
            "federation certificate accepted by several peers; refusing it",
            extra={"peers": sorted(names), "fingerprint": fingerprint(leaf_der)},
        )
        return None
    return accepting[0] if accepting else None


def _trust_anchors(context: ssl.SSLContext, pem: bytes) -> None:
    context.verify_mode = ssl.CERT_REQUIRED
    # A pinned (non-CA, or not self-signed) certificate is a trust anchor by itself.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if pem:
        context.load_verify_locations(cadata=pem.decode("ascii"))


def transfer_server_context(cert: Path, key: Path, trusts: Sequence[PeerTrust]) -> ssl.SSLContext:
    """The transfer port's TLS context: our certificate, a client certificate required.

    Trusted: every peer's anchors (with none, nobody's certificate verifies). The
    handshake only proves that the client holds a certificate chaining to some
    anchor; the listener must then `identify` the presented leaf. Our certificate
    and key are loaded and checked by `keys.tls.load_server_context` (TlsFileError).
    """
    context = load_server_context(cert, key)
    _trust_anchors(context, b"".join(trust.anchors_pem() for trust in trusts))
    return context


def peer_client_context(trust: PeerTrust, cert: Path, key: Path) -> ssl.SSLContext:
    """The TLS context for connecting to one peer, presenting our certificate.

    TLS 1.2 or newer; the server certificate must chain to this peer's anchors only.
    In CA mode the host name is checked: connect with `server_hostname=trust.server_name`.
    In pinned mode it is not (the identity is the exact certificate); the caller must
    then call `trust.accepts` on the presented leaf, as in CA mode too. Our certificate
    and key are validated as the listener's are (TlsFileError naming the file).
    """
    load_server_context(cert, key)  # the same checks and error messages as the listener
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    _trust_anchors(context, trust.anchors_pem())
    context.check_hostname = not trust.pinned_mode()
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (ssl.SSLError, OSError) as exc:
        raise TlsFileError(f"{cert}: cannot load certificate and key: {exc}") from None
    return context
