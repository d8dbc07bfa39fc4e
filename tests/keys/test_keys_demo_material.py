from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.demo_material import (
    make_ca,
    make_openpgp_key,
    make_smime_certificate,
    write_certificate_pem,
    write_pkcs12,
    write_private_key_pem,
    write_secret_bytes,
)
from keys.identities import inspect_identity
from policies.codes import EmployeeCode

CODE = str(EmployeeCode("MOF", 7))
ADDRESS = "sara@mof.gov.example"


def test_make_openpgp_key(gnupghome: Path) -> None:
    start = time.perf_counter()
    fingerprint, public, secret = make_openpgp_key(gnupghome, "Sara Ali", ADDRESS, CODE)
    assert time.perf_counter() - start < 5
    assert len(fingerprint) == 40 and fingerprint == fingerprint.upper()
    assert public.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert secret.startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    listing = subprocess.run(
        ["gpg", "--homedir", str(gnupghome), "--batch", "--with-colons", "--list-keys"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pub = next(line.split(":") for line in listing.splitlines() if line.startswith("pub:"))
    assert pub[3] == "22"  # EdDSA
    assert "s" in pub[11] and "e" not in pub[11]  # signing only
    uid = next(line.split(":") for line in listing.splitlines() if line.startswith("uid:"))
    assert uid[9] == f"Sara Ali ({CODE}) <{ADDRESS}>"
    identity = inspect_identity(public)
    assert identity.fingerprint == fingerprint
    assert identity.employee_codes == (CODE,)


def test_make_openpgp_key_with_passphrase(gnupghome: Path) -> None:
    fingerprint, public, secret = make_openpgp_key(
        gnupghome, "Sara Ali", ADDRESS, CODE, passphrase="demo passphrase"
    )
    assert inspect_identity(public).fingerprint == fingerprint
    assert secret.startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")


@pytest.mark.parametrize(
    ("name", "address"),
    [("Sara (x)", ADDRESS), ("Sara", "<sara@x>"), ("Sara\nKey-Type: RSA", "a@b")],
)
def test_make_openpgp_key_refuses_user_id_injection(name: str, address: str) -> None:
    with pytest.raises(ValueError):
        make_openpgp_key("/nonexistent-unused", name, address, CODE)


def test_demo_ca_issues_smime_certificate(tmp_path: Path, openssl_tool: str) -> None:
    ca_key, ca_cert = make_ca("MOF demo CA")
    key, cert = make_smime_certificate(ca_key, ca_cert, "Sara Ali", ADDRESS, CODE)
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == CODE
    assert cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)[0].value == ADDRESS
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Sara Ali"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == [ADDRESS]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign

    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "sara.pem", tmp_path / "sara.key"
    write_certificate_pem(ca_path, ca_cert)
    write_certificate_pem(cert_path, cert)
    write_private_key_pem(key_path, key)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    result = subprocess.run(
        [openssl_tool, "verify", "-CAfile", str(ca_path), "-purpose", "smimesign", str(cert_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with pytest.raises(FileExistsError):
        write_private_key_pem(key_path, key)


def test_write_pkcs12_and_secret_bytes(tmp_path: Path) -> None:
    ca_key, ca_cert = make_ca("MOF demo CA")
    key, cert = make_smime_certificate(ca_key, ca_cert, "Sara Ali", ADDRESS, CODE)
    bundle = tmp_path / "sara.p12"
    write_pkcs12(bundle, key, cert, ca_cert, "bundle password")
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    loaded_key, loaded_cert, cas = pkcs12.load_key_and_certificates(
        bundle.read_bytes(), b"bundle password"
    )
    assert loaded_cert == cert
    assert cas == [ca_cert]
    assert loaded_key is not None
    secret = tmp_path / "sara.sec.asc"
    write_secret_bytes(secret, b"secret bytes")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
