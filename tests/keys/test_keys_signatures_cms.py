"""CMS / S/MIME signatures made by openssl, checked here and by `openssl cms -verify`."""

from __future__ import annotations

import datetime
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.demo_material import (
    make_ca,
    make_smime_certificate,
    write_certificate_pem,
    write_private_key_pem,
)
from keys.signatures import SignatureStatus, verify_cms_attached, verify_cms_detached
from policies.codes import EmployeeCode

CODE = str(EmployeeCode("MOH", 42))
ADDRESS = "sara@moh.gov.example"
DOCUMENT = b"Content-Type: application/pdf\r\n\r\n" + bytes(range(256)) * 400  # ~100 KB


def now_utc() -> datetime.datetime:
    """The moment of use: certificates are made and judged against the clock as it is
    then, never as it was when this module was imported."""
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Pki:
    dir: Path
    ca: x509.Certificate
    leaf: x509.Certificate

    def sign(self, *options: str, signer: str = "leaf", data: bytes = DOCUMENT) -> bytes:
        (self.dir / "doc").write_bytes(data)
        return subprocess.run(
            ["openssl", "cms", "-sign", "-binary", "-in", str(self.dir / "doc"),
             "-signer", str(self.dir / f"{signer}.pem"), "-inkey", str(self.dir / f"{signer}.key"),
             "-outform", "DER", *options],
            capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip

    def oracle(self, signature: bytes, data: bytes | None, ca: str = "ca") -> bool:
        """`openssl cms -verify` with the S/MIME signing purpose (RFC 8550 usage checks)."""
        (self.dir / "sig").write_bytes(signature)
        content = ["-content", str(self.dir / "check")] if data is not None else []
        if data is not None:
            (self.dir / "check").write_bytes(data)
        done = subprocess.run(
            ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(self.dir / "sig"),
             *content, "-CAfile", str(self.dir / f"{ca}.pem"), "-purpose", "smimesign",
             "-out", "/dev/null"],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
        return done.returncode == 0


def _write(directory: Path, name: str, key: object, cert: x509.Certificate) -> None:
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    write_certificate_pem(directory / f"{name}.pem", cert)
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _issue(
    issuer_key: rsa.RSAPrivateKey,
    issuer: x509.Certificate,
    subject: x509.Name,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    eku: list[x509.ObjectIdentifier] | None = None,
    days: int = 365,
) -> x509.Certificate:
    made = now_utc()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(made - datetime.timedelta(minutes=5))
        .not_valid_after(made + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False), critical=True
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(ADDRESS)]), critical=False
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _employee(common: str = "Sara Ali") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, ADDRESS),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, CODE),
        ]
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, openssl_tool: str) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca = make_ca("MOH demo CA")
    key, leaf = make_smime_certificate(ca_key, ca, "Sara Ali", ADDRESS, CODE)
    write_certificate_pem(directory / "ca.pem", ca)
    write_certificate_pem(directory / "leaf.pem", leaf)
    write_private_key_pem(directory / "leaf.key", key)
    # Another agency's CA, for the wrong-anchor case.
    other_key, other_ca = make_ca("MOF demo CA")
    write_certificate_pem(directory / "otherca.pem", other_ca)
    # A root above an intermediate CA that issues the employee certificate.
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Cabinet root CA")])
    made = now_utc()
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(made - datetime.timedelta(minutes=5))
        .not_valid_after(made + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inter_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MOH-BGD CA")])
    inter = _issue(root_key, root, inter_name, inter_key, ca=True)
    chained_key, chained = make_smime_certificate(inter_key, inter, "Sara Ali", ADDRESS, CODE)
    write_certificate_pem(directory / "root.pem", root)
    write_certificate_pem(directory / "inter.pem", inter)
    _write(directory, "chained", chained_key, chained)
    # Employee certificates: clientAuth only, no EKU, ECDSA P-256, expiring.
    client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    eku_client = [ExtendedKeyUsageOID.CLIENT_AUTH]
    _write(directory, "noemail", client_key,
           _issue(ca_key, ca, _employee(), client_key, eku=eku_client))  # fmt: skip
    _write(directory, "noeku", client_key, _issue(ca_key, ca, _employee(), client_key))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    eku_mail = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    _write(directory, "ecdsa", ec_key, _issue(ca_key, ca, _employee(), ec_key, eku=eku_mail))
    del other_key
    return Pki(directory, ca, leaf)


def _anchor(pki: Pki, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((pki.dir / f"{name}.pem").read_bytes())


def test_detached_signature_is_valid(pki: Pki) -> None:
    signature = pki.sign()
    assert pki.oracle(signature, DOCUMENT)
    result = verify_cms_detached(DOCUMENT, signature, [pki.ca], when=now_utc())
    assert result.status is SignatureStatus.VALID, result.reason
    assert result.signer_fingerprint == pki.leaf.fingerprint(hashes.SHA256()).hex().upper()
    assert result.employee_codes == (CODE,)
    assert result.addresses == (ADDRESS,)


@pytest.mark.parametrize("options", [("-nodetach",), ("-nodetach", "-stream")], ids=str)
def test_attached_signature_returns_the_content(pki: Pki, options: tuple[str, ...]) -> None:
    p7m = pki.sign(*options)
    assert pki.oracle(p7m, None)
    result, content = verify_cms_attached(p7m, [pki.ca], when=now_utc())
    assert result.status is SignatureStatus.VALID, result.reason
    assert content == DOCUMENT
    assert result.employee_codes == (CODE,)


@pytest.mark.parametrize(
    "options",
    [
        ("-md", "sha384"),
        ("-md", "sha512"),
        ("-keyopt", "rsa_padding_mode:pss"),
        ("-noattr",),  # RFC 5652 §5.4: the signature is over the content itself
        ("-keyid",),  # signer named by subjectKeyIdentifier
    ],
    ids=str,
)
def test_signature_variants(pki: Pki, options: tuple[str, ...]) -> None:
    signature = pki.sign(*options)
    assert pki.oracle(signature, DOCUMENT)
    result = verify_cms_detached(DOCUMENT, signature, [pki.ca], when=now_utc())
    assert result.status is SignatureStatus.VALID, result.reason
    changed = verify_cms_detached(DOCUMENT + b" ", signature, [pki.ca], when=now_utc())
    assert changed.status is SignatureStatus.BAD_SIGNATURE


def test_ecdsa_signer(pki: Pki) -> None:
    signature = pki.sign(signer="ecdsa")
    assert pki.oracle(signature, DOCUMENT)
    assert verify_cms_detached(DOCUMENT, signature, [pki.ca], when=now_utc()).valid


def test_pem_signature_is_accepted(pki: Pki) -> None:
    pem = pki.sign("-outform", "PEM")
    assert pem.startswith(b"-----BEGIN CMS-----")
    assert verify_cms_detached(DOCUMENT, pem, [pki.ca], when=now_utc()).valid


def test_chain_through_an_intermediate(pki: Pki) -> None:
    signature = pki.sign("-certfile", str(pki.dir / "inter.pem"), signer="chained")
    assert pki.oracle(signature, DOCUMENT, ca="root")
    result = verify_cms_detached(DOCUMENT, signature, [_anchor(pki, "root")], when=now_utc())
    assert result.status is SignatureStatus.VALID, result.reason
    assert result.employee_codes == (CODE,)
    # Without the intermediate in the signature the chain cannot be built.
    bare = pki.sign(signer="chained")
    assert not pki.oracle(bare, DOCUMENT, ca="root")
    missing = verify_cms_detached(DOCUMENT, bare, [_anchor(pki, "root")], when=now_utc())
    assert missing.status is SignatureStatus.UNTRUSTED
    # The intermediate itself may be the configured agency CA.
    direct = verify_cms_detached(DOCUMENT, bare, [_anchor(pki, "inter")], when=now_utc())
    assert direct.status is SignatureStatus.VALID, direct.reason


def test_wrong_anchor_is_untrusted(pki: Pki) -> None:
    signature = pki.sign()
    assert not pki.oracle(signature, DOCUMENT, ca="otherca")
    result = verify_cms_detached(DOCUMENT, signature, [_anchor(pki, "otherca")], when=now_utc())
    assert result.status is SignatureStatus.UNTRUSTED
    assert result.reason == "the signer certificate does not chain to an agency CA"
    assert result.signer_fingerprint is not None
    assert result.status.reply == (550, "5.7.1")
    none = verify_cms_detached(DOCUMENT, signature, [], when=now_utc())
    assert none.status is SignatureStatus.UNTRUSTED


def test_certificate_without_email_protection_is_untrusted(pki: Pki) -> None:
    client_only = pki.sign(signer="noemail")
    assert not pki.oracle(client_only, DOCUMENT)
    result = verify_cms_detached(DOCUMENT, client_only, [pki.ca], when=now_utc())
    assert result.status is SignatureStatus.UNTRUSTED
    assert result.reason == "the signer certificate lacks the emailProtection usage"
    # openssl accepts a certificate with no EKU at all; Barid requires the usage.
    no_eku = pki.sign(signer="noeku")
    assert pki.oracle(no_eku, DOCUMENT)
    assert verify_cms_detached(DOCUMENT, no_eku, [pki.ca], when=now_utc()).status is (
        SignatureStatus.UNTRUSTED
    )


def test_validity_is_judged_at_when(pki: Pki) -> None:
    signature = pki.sign()
    now = now_utc()
    later = verify_cms_detached(DOCUMENT, signature, [pki.ca], when=now.replace(year=now.year + 3))
    assert later.status is SignatureStatus.UNTRUSTED
    assert later.reason == "the signer certificate has expired"
    earlier = verify_cms_detached(
        DOCUMENT, signature, [pki.ca], when=now - datetime.timedelta(days=1)
    )
    assert earlier.status is SignatureStatus.UNTRUSTED


@pytest.mark.parametrize("position", [0, len(DOCUMENT) // 2, len(DOCUMENT) - 1])
def test_changed_content_is_a_bad_signature(pki: Pki, position: int) -> None:
    signature = pki.sign()
    changed = bytearray(DOCUMENT)
    changed[position] ^= 0x80
    assert not pki.oracle(signature, bytes(changed))
    result = verify_cms_detached(bytes(changed), signature, [pki.ca], when=now_utc())
    assert result.status is SignatureStatus.BAD_SIGNATURE
    assert result.status.reply == (554, "5.7.5")


def test_tampered_attached_content_is_a_bad_signature(pki: Pki) -> None:
    p7m = bytearray(pki.sign("-nodetach"))
    offset = bytes(p7m).index(bytes(range(256)))
    p7m[offset + 10] ^= 0x01
    assert not pki.oracle(bytes(p7m), None)
    result, content = verify_cms_attached(bytes(p7m), [pki.ca], when=now_utc())
    assert result.status is SignatureStatus.BAD_SIGNATURE
    assert content is None


def test_weak_digest_is_refused(pki: Pki) -> None:
    try:
        signature = pki.sign("-md", "sha1")
    except subprocess.CalledProcessError:
        pytest.skip("this openssl refuses SHA-1 signatures")
    result = verify_cms_detached(DOCUMENT, signature, [pki.ca], when=now_utc())
    assert result.status is SignatureStatus.BAD_SIGNATURE
    assert result.reason == "the signature uses a weak or unsupported digest"


def test_registered_certificates(pki: Pki) -> None:
    signature = pki.sign()
    other = _anchor(pki, "chained")
    unregistered = verify_cms_detached(DOCUMENT, signature, [pki.ca], when=now_utc(), registered=[other])
    assert unregistered.status is SignatureStatus.UNKNOWN_SIGNER
    registered = verify_cms_detached(
        DOCUMENT, signature, [pki.ca], when=now_utc(), registered=[other, pki.leaf]
    )
    assert registered.valid
    # RFC 5652 allows leaving the signer certificate out; the registered one is used.
    nocerts = pki.sign("-nocerts")
    assert verify_cms_detached(DOCUMENT, nocerts, [pki.ca], when=now_utc()).status is (
        SignatureStatus.UNKNOWN_SIGNER
    )
    assert verify_cms_detached(DOCUMENT, nocerts, [pki.ca], when=now_utc(), registered=[pki.leaf]).valid


def test_wrong_shape_is_malformed(pki: Pki) -> None:
    detached = pki.sign()
    attached = pki.sign("-nodetach")
    assert verify_cms_detached(DOCUMENT, attached, [pki.ca], when=now_utc()).status is (
        SignatureStatus.MALFORMED
    )
    result, content = verify_cms_attached(detached, [pki.ca], when=now_utc())
    assert result.status is SignatureStatus.MALFORMED and content is None


GARBAGE = [
    b"",
    b"garbage",
    b"\x30\x80",
    b"\x30\x82\xff\xff" + b"\x00" * 10,
    b"-----BEGIN PKCS7-----\nzzzz\n-----END PKCS7-----\n",
    b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    b"\x30" + b"\x84\xff\xff\xff\xff",
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_is_malformed(pki: Pki, garbage: bytes) -> None:
    result = verify_cms_detached(DOCUMENT, garbage, [pki.ca], when=now_utc())
    assert result.status is SignatureStatus.MALFORMED
    attached, content = verify_cms_attached(garbage, [pki.ca], when=now_utc())
    assert attached.status is SignatureStatus.MALFORMED and content is None


def test_truncations_and_bit_flips_never_raise(pki: Pki) -> None:
    signature = pki.sign()
    der_certificate = pki.leaf.public_bytes(serialization.Encoding.DER)
    truncated = [signature[:n] for n in range(0, len(signature), 97)] + [der_certificate]
    for sample in truncated:
        result = verify_cms_detached(DOCUMENT, sample, [pki.ca], when=now_utc())
        assert result.status is SignatureStatus.MALFORMED
    for index in range(len(signature)):
        flipped = bytearray(signature)
        flipped[index] ^= 0x5A
        result = verify_cms_detached(DOCUMENT, bytes(flipped), [pki.ca], when=now_utc())
        assert result.reason.isascii()
        if index >= len(signature) - 256:  # the RSA signature value
            assert result.status is SignatureStatus.BAD_SIGNATURE, index


def test_cms_is_fast_for_a_100_kb_document(pki: Pki) -> None:
    signature = pki.sign()
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        assert verify_cms_detached(DOCUMENT, signature, [pki.ca], when=now_utc()).valid
    per_call = (time.perf_counter() - start) / rounds
    assert per_call < 0.05, f"{per_call * 1000:.1f} ms per verification"
