"""TLS server material: the self-signed development certificate and the server context.

Owns: creating a development certificate once (never replacing one) and building a
TLS 1.2+ server `ssl.SSLContext` with errors that name the faulty file. Must not:
open listeners or decide which ports use TLS; that is the gateway's job.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.key_files import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, KeyFileError, write_new_file

DEV_CERT_VALIDITY = datetime.timedelta(days=365)
_CLOCK_SKEW = datetime.timedelta(minutes=5)


class TlsFileError(KeyFileError):
    """A certificate or TLS key file is missing, unreadable, malformed or mismatched."""


def _subject_alt_names(hostname: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for entry in (hostname, "localhost", "127.0.0.1", "::1"):
        try:
            address = ipaddress.ip_address(entry)
        except ValueError:
            key = entry.lower()
            if key not in seen:
                seen.add(key)
                names.append(x509.DNSName(key))
        else:
            key = address.compressed
            if key not in seen:
                seen.add(key)
                names.append(x509.IPAddress(address))
    return names


def make_dev_certificate(
    hostname: str, now: datetime.datetime | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new P-256 key and a self-signed serverAuth+clientAuth certificate valid for one year.

    Subject alternative names: `hostname`, localhost, 127.0.0.1 and ::1.
    """
    hostname = hostname.strip().rstrip(".")
    if not hostname:
        raise ValueError("a development certificate needs a hostname")
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Barid development certificate"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + DEV_CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_subject_alt_names(hostname)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            # clientAuth too: the same certificate authenticates us in mutual TLS
            # (the federation transfer port), where OpenSSL checks the client purpose.
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def ensure_dev_certificate(cert_path: Path | str, key_path: Path | str, hostname: str) -> bool:
    """Create a self-signed development certificate unless one is there.

    Returns True when it created the pair, False when both files already existed.
    Refuses (TlsFileError) when only one of the two exists, rather than replace it.
    The key file is created with mode 0600, the certificate with 0644.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    cert_exists, key_exists = os.path.lexists(cert_path), os.path.lexists(key_path)
    if cert_exists and key_exists:
        return False
    if cert_exists or key_exists:
        have, missing = (cert_path, key_path) if cert_exists else (key_path, cert_path)
        raise TlsFileError(
            f"{missing}: missing while {have} exists; restore it, or remove {have}"
            " to create a new development certificate"
        )
    key, cert = make_dev_certificate(hostname)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for path in (cert_path, key_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_new_file(key_path, key_pem, PRIVATE_FILE_MODE)
        write_new_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE_MODE)
    except OSError as exc:
        raise TlsFileError(f"{exc.filename or cert_path}: cannot create: {exc.strerror}") from None
    return True


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsFileError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise TlsFileError(f"{path}: cannot read {what}: {exc.strerror}") from None


def _spki(key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_server_context(cert_path: Path | str, key_path: Path | str) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) for the given certificate and key.

    `cert_path` is a PEM file with the server certificate first, then any
    intermediates. Raises TlsFileError naming the file when it cannot be read or
    parsed, when the key is passphrase-protected, or when key and certificate differ.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    cert_pem = _read(cert_path, "TLS certificate")
    key_pem = _read(key_path, "TLS key")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TlsFileError(f"{cert_path}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsFileError(
            f"{key_path}: TLS key is passphrase-protected; use an unencrypted key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsFileError(f"{key_path}: not a PEM private key") from None
    if _spki(chain[0].public_key()) != _spki(key.public_key()):
        raise TlsFileError(f"{key_path}: TLS key does not match the certificate in {cert_path}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(certfile=str(cert_path), keyfile=str(key_path))
    except (ssl.SSLError, OSError) as exc:
        raise TlsFileError(f"{cert_path}: cannot load certificate and key: {exc}") from None
    return context
