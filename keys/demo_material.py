"""Key material for the demo directory and for tests: OpenPGP keys, a demo agency CA.

Owns: making employee OpenPGP keys with gpg, a demo CA and S/MIME certificates
with `cryptography`, and writing them out (private keys 0600, never overwriting).
Must not: be used for production identities; real employees bring their own keys.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

import gnupg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.key_files import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, write_new_file

DEMO_OPENPGP_EXPIRY = "2y"
CA_VALIDITY = datetime.timedelta(days=10 * 365)
SMIME_VALIDITY = datetime.timedelta(days=2 * 365)
_CLOCK_SKEW = datetime.timedelta(minutes=5)
_FORBIDDEN_IN_USER_ID = set("()<>\r\n\0")


class DemoMaterialError(RuntimeError):
    """gpg failed or refused the request; the message says what gpg reported."""


# ---------------------------------------------------------------- OpenPGP


def _check_user_id_part(label: str, value: str) -> str:
    value = value.strip()
    if not value or _FORBIDDEN_IN_USER_ID & set(value):
        raise ValueError(f"{label} {value!r} is empty or contains ( ) < > or a line break")
    return value


def make_openpgp_key(
    gnupghome: Path | str,
    name: str,
    address: str,
    code: str,
    passphrase: str | None = None,
) -> tuple[str, bytes, bytes]:
    """Generate an Ed25519 signing key with user ID `Name (CODE) <address>`.

    Returns (fingerprint as upper hex, armored public key, armored secret key).
    Without a passphrase the secret key is unprotected (demo use). `gnupghome`
    should be a short path: gpg-agent's socket path is limited to about 100 bytes.
    Call `stop_gpg_agent(gnupghome)` when done with the home directory.
    """
    name = _check_user_id_part("name", name)
    address = _check_user_id_part("address", address)
    code = _check_user_id_part("code", code)
    if passphrase is not None and ("\n" in passphrase or "\r" in passphrase):
        raise ValueError("passphrase must be one line")
    home = Path(gnupghome)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    gpg = gnupg.GPG(gnupghome=str(home))
    lines = [
        "Key-Type: EDDSA",
        "Key-Curve: ed25519",
        "Key-Usage: sign",
        f"Name-Real: {name}",
        f"Name-Comment: {code}",
        f"Name-Email: {address}",
        f"Expire-Date: {DEMO_OPENPGP_EXPIRY}",
    ]
    lines.append("%no-protection" if passphrase is None else f"Passphrase: {passphrase}")
    lines.append("%commit")
    result = gpg.gen_key("\n".join(lines) + "\n")
    fingerprint = str(result.fingerprint or "")
    if not fingerprint:
        raise DemoMaterialError(f"gpg could not generate a key: {result.status or 'no status'}")
    public = gpg.export_keys(fingerprint, armor=True)
    if passphrase is None:
        secret = gpg.export_keys(fingerprint, secret=True, armor=True, expect_passphrase=False)
    else:
        secret = gpg.export_keys(fingerprint, secret=True, armor=True, passphrase=passphrase)
    if not public or not secret:
        raise DemoMaterialError(f"gpg could not export key {fingerprint}")
    return fingerprint.upper(), str(public).encode("ascii"), str(secret).encode("ascii")


def stop_gpg_agent(gnupghome: Path | str) -> None:
    """Stop the gpg-agent that gpg started for `gnupghome`, if any."""
    subprocess.run(
        ["gpgconf", "--homedir", str(gnupghome), "--kill", "gpg-agent"],
        check=False,
        capture_output=True,
        timeout=30,
    )


# ---------------------------------------------------------------- X.509


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A demo agency CA: RSA 2048 key, self-signed, valid ten years, path length 0."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Barid demo"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_smime_certificate(
    ca_key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    address: str,
    code: str,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """An employee S/MIME signing certificate issued by the demo CA.

    Subject CN=name, emailAddress=address, serialNumber=code; SAN rfc822Name; EKU
    emailProtection; key usage digitalSignature; valid two years.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, address),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, code),
        ]
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(min(now + SMIME_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


# ---------------------------------------------------------------- writers


def write_private_key_pem(path: Path | str, key: rsa.RSAPrivateKey) -> None:
    """Write an unencrypted PKCS#8 PEM key, mode 0600; refuses to replace a file."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_new_file(Path(path), data, PRIVATE_FILE_MODE)


def write_certificate_pem(path: Path | str, cert: x509.Certificate) -> None:
    """Write a PEM certificate, mode 0644; refuses to replace a file."""
    write_new_file(Path(path), cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE_MODE)


def write_secret_bytes(path: Path | str, data: bytes) -> None:
    """Write secret bytes (e.g. an armored OpenPGP secret key), mode 0600."""
    write_new_file(Path(path), data, PRIVATE_FILE_MODE)


def write_pkcs12(
    path: Path | str,
    key: rsa.RSAPrivateKey,
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    password: str,
) -> None:
    """A PKCS#12 bundle (key, certificate, CA) for importing into a mail client, 0600."""
    data = pkcs12.serialize_key_and_certificates(
        name=os.fsencode(Path(path).stem),
        key=key,
        cert=cert,
        cas=[ca_cert],
        encryption_algorithm=serialization.BestAvailableEncryption(password.encode("utf-8")),
    )
    write_new_file(Path(path), data, PRIVATE_FILE_MODE)
