from __future__ import annotations

import datetime
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from keys.demo_material import make_ca, make_openpgp_key, make_smime_certificate
from keys.identities import (
    PRIVATE_KEY_MESSAGE,
    IdentityError,
    SigningIdentity,
    check_identity_owner,
    inspect_identity,
)
from policies.codes import EmployeeCode

ADDRESS = "ali.hassan@moh.gov.example"
CODE = str(EmployeeCode("MOH", 42))
OTHER_CODE = str(EmployeeCode("MOH", 43))
NAME = "Ali Hassan"


@dataclass(frozen=True)
class GpgKey:
    home: Path
    fingerprint: str
    armored: bytes
    binary: bytes
    secret_armored: bytes
    secret_binary: bytes


def _gpg(home: Path, *args: str) -> bytes:
    result = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--quiet", *args],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return result.stdout


@pytest.fixture(scope="module")
def gpg_key(module_gnupghome: Path) -> GpgKey:
    fingerprint, armored, secret = make_openpgp_key(module_gnupghome, NAME, ADDRESS, CODE)
    return GpgKey(
        home=module_gnupghome,
        fingerprint=fingerprint,
        armored=armored,
        binary=_gpg(module_gnupghome, "--export", fingerprint),
        secret_armored=secret,
        secret_binary=_gpg(module_gnupghome, "--export-secret-keys", fingerprint),
    )


@pytest.fixture(scope="module")
def second_gpg_key(gpg_key: GpgKey) -> bytes:
    _, armored, _ = make_openpgp_key(
        gpg_key.home, "Bo Karim", "bo.karim@moh.gov.example", OTHER_CODE
    )
    return armored


@dataclass(frozen=True)
class OpensslCert:
    pem: bytes
    der: bytes
    key_pem: bytes
    key_der: bytes


@pytest.fixture(scope="module")
def openssl_cert(tmp_path_factory: pytest.TempPathFactory, openssl_tool: str) -> OpensslCert:
    openssl = openssl_tool
    directory = tmp_path_factory.mktemp("openssl")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "30",
            "-subj", f"/CN={NAME}/emailAddress={ADDRESS.upper()}/serialNumber={CODE}",
            "-addext", f"subjectAltName=email:{ADDRESS}",
            "-addext", "extendedKeyUsage=emailProtection",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )  # fmt: skip
    der = subprocess.run(
        [openssl, "x509", "-in", str(cert), "-outform", "DER"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    key_der = subprocess.run(
        [openssl, "pkcs8", "-topk8", "-nocrypt", "-in", str(key), "-outform", "DER"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    return OpensslCert(cert.read_bytes(), der, key.read_bytes(), key_der)


# ---------------------------------------------------------------- OpenPGP


@pytest.mark.parametrize("form", ["armored", "binary"])
def test_inspects_gpg_public_key(gpg_key: GpgKey, form: str) -> None:
    data = gpg_key.armored if form == "armored" else gpg_key.binary
    assert data.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----") == (form == "armored")
    identity = inspect_identity(data)
    assert identity.kind == "openpgp"
    assert identity.fingerprint == gpg_key.fingerprint
    assert re.fullmatch(r"[0-9A-F]{40}", identity.fingerprint)
    assert identity.addresses == (ADDRESS,)
    assert identity.employee_codes == (CODE,)
    assert identity.display_names == (NAME,)
    assert identity.subject == f"{NAME} ({CODE}) <{ADDRESS}>"
    assert identity.email_protection is None
    assert identity.not_before is not None and identity.not_after is not None
    now = datetime.datetime.now(datetime.UTC)
    assert identity.is_valid_at(now)
    assert identity.not_after - now > datetime.timedelta(days=365)
    check_identity_owner(identity, ADDRESS, CODE)
    check_identity_owner(identity, ADDRESS.upper(), EmployeeCode.parse(CODE))


def test_gpg_fingerprint_matches_gpg_listing(gpg_key: GpgKey) -> None:
    listing = _gpg(gpg_key.home, "--with-colons", "--fingerprint", gpg_key.fingerprint).decode()
    fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
    assert fingerprints[0] == inspect_identity(gpg_key.binary).fingerprint


@pytest.mark.parametrize("form", ["secret_armored", "secret_binary"])
def test_refuses_openpgp_secret_key(gpg_key: GpgKey, form: str) -> None:
    with pytest.raises(IdentityError, match=re.escape(PRIVATE_KEY_MESSAGE)):
        inspect_identity(getattr(gpg_key, form))


def test_refuses_two_openpgp_keys(gpg_key: GpgKey, second_gpg_key: bytes) -> None:
    with pytest.raises(IdentityError, match="holds 2 OpenPGP keys"):
        inspect_identity(
            gpg_key.binary + _gpg(gpg_key.home, "--export", "bo.karim@moh.gov.example")
        )
    with pytest.raises(IdentityError, match="holds 2 OpenPGP keys"):
        inspect_identity(_gpg(gpg_key.home, "--export", "--armor"))


def test_other_employee_key_is_refused(second_gpg_key: bytes) -> None:
    identity = inspect_identity(second_gpg_key)
    with pytest.raises(IdentityError, match=f"names bo.karim@moh.gov.example, not {ADDRESS}"):
        check_identity_owner(identity, ADDRESS, CODE)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_refuses_truncated_openpgp(gpg_key: GpgKey, cut: float) -> None:
    for data in (gpg_key.armored, gpg_key.binary):
        truncated = data[: int(len(data) * cut)]
        with pytest.raises(IdentityError) as info:
            inspect_identity(truncated)
        assert "\n" not in str(info.value)


def test_refuses_forged_user_id(gpg_key: GpgKey) -> None:
    # Changing the user ID breaks its self-signature: the address must not be believed.
    forged = gpg_key.binary.replace(b"ali.hassan@", b"bob.hassan@")
    assert forged != gpg_key.binary
    with pytest.raises(IdentityError, match="no valid self-signed user ID"):
        inspect_identity(forged)


def test_refuses_openpgp_signature(gpg_key: GpgKey, tmp_path: Path) -> None:
    document = tmp_path / "doc.txt"
    document.write_bytes(b"circular\n")
    signature = _gpg(gpg_key.home, "--armor", "--detach-sign", "--output", "-", str(document))
    with pytest.raises(IdentityError, match="OpenPGP signature, not a public key"):
        inspect_identity(signature)


# ---------------------------------------------------------------- X.509


@pytest.mark.parametrize("form", ["pem", "der"])
def test_inspects_openssl_certificate(openssl_cert: OpensslCert, form: str) -> None:
    identity = inspect_identity(openssl_cert.pem if form == "pem" else openssl_cert.der)
    cert = x509.load_der_x509_certificate(openssl_cert.der)
    assert identity.kind == "x509"
    assert identity.fingerprint == cert.fingerprint(hashes.SHA256()).hex().upper()
    assert len(identity.fingerprint) == 64
    # SAN and subject emailAddress name the same mailbox in different case: one address.
    assert [a.lower() for a in identity.addresses] == [ADDRESS]
    assert identity.employee_codes == (CODE,)
    assert identity.display_names == (NAME,)
    assert identity.email_protection is True
    assert identity.not_before == cert.not_valid_before_utc
    assert identity.not_after == cert.not_valid_after_utc
    check_identity_owner(identity, ADDRESS, CODE)


def test_inspects_cryptography_certificate() -> None:
    ca_key, ca_cert = make_ca("MOH demo CA")
    _, cert = make_smime_certificate(ca_key, ca_cert, NAME, ADDRESS, CODE)
    identity = inspect_identity(cert.public_bytes(serialization.Encoding.PEM))
    assert identity.kind == "x509"
    assert identity.addresses == (ADDRESS,)
    assert identity.employee_codes == (CODE,)
    assert identity.email_protection is True
    assert "serialNumber" in identity.subject or "2.5.4.5" in identity.subject
    check_identity_owner(identity, ADDRESS, CODE)
    with pytest.raises(IdentityError, match="CA certificate"):
        inspect_identity(ca_cert.public_bytes(serialization.Encoding.PEM))


def test_certificate_without_email_protection_is_reported(
    openssl_tool: str, tmp_path: Path
) -> None:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            openssl_tool, "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "1", "-subj", f"/CN={NAME}/emailAddress={ADDRESS}",
            "-addext", "basicConstraints=critical,CA:FALSE",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )  # fmt: skip
    identity = inspect_identity(cert.read_bytes())
    assert identity.email_protection is False
    assert identity.employee_codes == ()
    check_identity_owner(identity, ADDRESS, CODE)  # naming no code is allowed


def test_refuses_private_keys(openssl_cert: OpensslCert) -> None:
    for data in (
        openssl_cert.key_pem,
        openssl_cert.key_der,
        openssl_cert.pem + openssl_cert.key_pem,
    ):
        with pytest.raises(IdentityError, match=re.escape(PRIVATE_KEY_MESSAGE)):
            inspect_identity(data)


def test_refuses_two_certificates(openssl_cert: OpensslCert) -> None:
    ca_key, ca_cert = make_ca("MOH demo CA")
    _, other = make_smime_certificate(ca_key, ca_cert, NAME, ADDRESS, CODE)
    bundle = openssl_cert.pem + other.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(IdentityError, match="holds 2 certificates"):
        inspect_identity(bundle)


def test_refuses_truncated_certificates(openssl_cert: OpensslCert) -> None:
    half_pem = openssl_cert.pem[: len(openssl_cert.pem) // 2]
    with pytest.raises(IdentityError, match="malformed PEM certificate"):
        inspect_identity(half_pem)
    with pytest.raises(IdentityError, match=r"not an X\.509 certificate"):
        inspect_identity(openssl_cert.der[:-20])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"hello, this is not a key\n",
        b"\x00\x01\x02\x03",
        b"\x99\x01\x0dgarbage",
        b"\x30\x82\x05\x00" + bytes(40),
        b"-----BEGIN SOMETHING-----\nAAAA\n-----END SOMETHING-----\n",
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    ],
)
def test_refuses_garbage(data: bytes) -> None:
    with pytest.raises(IdentityError) as info:
        inspect_identity(data)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- ownership


def _identity(addresses: tuple[str, ...], codes: tuple[str, ...]) -> SigningIdentity:
    return SigningIdentity(
        kind="x509",
        fingerprint="AB" * 32,
        addresses=addresses,
        employee_codes=codes,
        display_names=(NAME,),
        not_before=None,
        not_after=None,
        email_protection=True,
        subject=f"CN={NAME}",
    )


def test_owner_check_refuses_wrong_address() -> None:
    with pytest.raises(IdentityError, match=f"names bo@moh.gov.example, not {ADDRESS}"):
        check_identity_owner(_identity(("bo@moh.gov.example",), (CODE,)), ADDRESS, CODE)
    with pytest.raises(IdentityError, match="no address"):
        check_identity_owner(_identity((), (CODE,)), ADDRESS, CODE)


def test_owner_check_refuses_extra_address() -> None:
    identity = _identity((ADDRESS, "bo@moh.gov.example"), (CODE,))
    with pytest.raises(IdentityError, match=re.escape("also names bo@moh.gov.example")):
        check_identity_owner(identity, ADDRESS, CODE)


def test_owner_check_refuses_other_employee_code() -> None:
    with pytest.raises(IdentityError, match=f"names employee code {OTHER_CODE}, not {CODE}"):
        check_identity_owner(_identity((ADDRESS,), (OTHER_CODE,)), ADDRESS, CODE)


def test_owner_check_refuses_mistyped_code() -> None:
    mistyped = CODE[:-1] + ("0" if CODE[-1] != "0" else "1")
    with pytest.raises(IdentityError, match="not a valid employee code"):
        check_identity_owner(_identity((ADDRESS,), (mistyped,)), ADDRESS, CODE)


def test_wrong_code_in_real_openpgp_key_is_refused(gpg_key: GpgKey) -> None:
    identity = inspect_identity(gpg_key.armored)
    with pytest.raises(IdentityError, match="names employee code"):
        check_identity_owner(identity, ADDRESS, OTHER_CODE)
