"""OpenPGP detached signatures made by gpg, checked by both backends and by gpg itself."""

from __future__ import annotations

import datetime
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keys.demo_material import make_openpgp_key
from keys.signatures import (
    OpenPgpBackend,
    SignatureResult,
    SignatureStatus,
    verify_openpgp_detached,
)
from policies.codes import EmployeeCode

CODE = str(EmployeeCode("MOH", 42))
ADDRESS = "sara@moh.gov.example"
BACKENDS = ["sequoia", "gnupg"]
# A MIME part as it stands in a message: CRLF line ends, trailing whitespace kept.
DOCUMENT = (
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nOfficial letter  \r\nline\t\r\n"
    + bytes(b for b in range(256) if b not in b"\r\n") * 4
)


@dataclass
class Keys:
    home: Path
    sara: str  # fingerprints
    other: str
    parent: str  # primary key with a signing subkey
    expired: str
    revoked: str
    public: dict[str, bytes]
    revoked_signature: bytes = b""

    def gpg(self, *args: str, data: bytes = b"") -> bytes:
        return subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--yes", "--pinentry-mode",
             "loopback", "--passphrase", "", *args],
            input=data, capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip

    def sign(self, fpr: str, data: bytes, *, textmode: bool = False, armor: bool = False,
             extra: tuple[str, ...] = ()) -> bytes:  # fmt: skip
        args = [*extra, "--local-user", fpr, "--detach-sign", "--output", "-"]
        args += ["--textmode"] if textmode else []
        args += ["--armor"] if armor else []
        return self.gpg(*args, data=data)

    def oracle(self, tmp: Path, data: bytes, signature: bytes) -> str:
        """gpg's own verdict: the first of GOODSIG, EXPKEYSIG, REVKEYSIG, BADSIG, ERRSIG."""
        (tmp / "doc").write_bytes(data)
        (tmp / "doc.sig").write_bytes(signature)
        status = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--status-fd", "1", "--verify",
             str(tmp / "doc.sig"), str(tmp / "doc")],
            capture_output=True, text=True, check=False, timeout=60,
        ).stdout  # fmt: skip
        for word in ("GOODSIG", "EXPKEYSIG", "REVKEYSIG", "BADSIG", "ERRSIG", "NODATA"):
            if f"[GNUPG:] {word}" in status:
                return word
        return "NONE"


def _quick_key(home: Path, uid: str, usage: str, expiry: str, *options: str) -> str:
    out = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--status-fd", "1",
         *options, "--quick-gen-key", uid, "ed25519", usage, expiry],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return next(line.split()[-1] for line in out.splitlines() if "KEY_CREATED" in line).upper()


@pytest.fixture(scope="module")
def keys(module_gnupghome: Path) -> Iterator[Keys]:
    home = module_gnupghome
    sara, _, _ = make_openpgp_key(home, "Sara Ali", ADDRESS, CODE)
    other, _, _ = make_openpgp_key(home, "Other Person", "other@moh.gov.example", CODE)
    k = Keys(home, sara, other, "", "", "", {})
    # A certify-only primary key with a separate signing subkey.
    k.parent = _quick_key(home, "Omar (MOH-000050-X) <omar@moh.gov.example>", "cert", "1y")
    k.gpg("--quick-add-key", k.parent, "ed25519", "sign", "1y")
    # A key made in 2020 with one day of life (its signature is made in that day).
    past = ("--faked-system-time", "20200101T000000!")
    k.expired = _quick_key(home, "Old Key <old@moh.gov.example>", "sign", "1d", *past)
    k.revoked = _quick_key(home, "Gone <gone@moh.gov.example>", "sign", "1y")
    # Signed before the revocation: gpg refuses to sign with a revoked key.
    k.revoked_signature = k.sign(k.revoked, DOCUMENT)
    revocation = (home / "openpgp-revocs.d" / f"{k.revoked}.rev").read_bytes()
    k.gpg("--import", data=revocation.replace(b":-----BEGIN", b"-----BEGIN"))
    for fpr in (k.sara, k.other, k.parent, k.expired, k.revoked):
        k.public[fpr] = k.gpg("--export", "--armor", fpr)
    yield k


def now_utc() -> datetime.datetime:
    """The moment of use: keys and signatures are judged against the clock as it is
    then, never as it was when this module was imported."""
    return datetime.datetime.now(datetime.UTC)


def _verify(data: bytes, signature: bytes, certs: list[bytes], backend: str = "sequoia",
            when: datetime.datetime | None = None) -> SignatureResult:  # fmt: skip
    assert backend in ("sequoia", "gnupg")
    chosen: OpenPgpBackend = "sequoia" if backend == "sequoia" else "gnupg"
    at = now_utc() if when is None else when
    return verify_openpgp_detached(data, signature, certs, when=at, backend=chosen)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("textmode", [False, True], ids=["binary", "text"])
@pytest.mark.parametrize("armor", [False, True], ids=["raw", "armored"])
def test_gpg_signature_verifies(
    keys: Keys, tmp_path: Path, backend: str, textmode: bool, armor: bool
) -> None:
    signature = keys.sign(keys.sara, DOCUMENT, textmode=textmode, armor=armor)
    assert keys.oracle(tmp_path, DOCUMENT, signature) == "GOODSIG"
    result = _verify(
        DOCUMENT, signature, [keys.public[keys.other], keys.public[keys.sara]], backend
    )
    assert result.status is SignatureStatus.VALID, result.reason
    assert result.signer_fingerprint == keys.sara
    assert result.employee_codes == (CODE,)
    assert result.addresses == (ADDRESS,)


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_mode_hashes_line_ends_as_crlf_but_keeps_whitespace(
    keys: Keys, tmp_path: Path, backend: str
) -> None:
    lf = b"Official letter  \nline\t\n"
    crlf = lf.replace(b"\n", b"\r\n")
    text_sig = keys.sign(keys.sara, lf, textmode=True)
    binary_sig = keys.sign(keys.sara, lf)
    certs = [keys.public[keys.sara]]
    cases = [
        (crlf, text_sig, SignatureStatus.VALID, "GOODSIG"),  # RFC 9580 §5.2.1.2
        (lf, text_sig, SignatureStatus.VALID, "GOODSIG"),
        (crlf.replace(b"  \r\n", b"\r\n"), text_sig, SignatureStatus.BAD_SIGNATURE, "BADSIG"),
        (crlf, binary_sig, SignatureStatus.BAD_SIGNATURE, "BADSIG"),  # 0x00: bytes as they are
    ]
    for data, signature, expected, oracle in cases:
        assert keys.oracle(tmp_path, data, signature) == oracle
        result = _verify(data, signature, certs, backend)
        assert result.status is expected, (data, result)


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_mode_over_a_bare_cr_follows_gpg(keys: Keys, tmp_path: Path, backend: str) -> None:
    """gpg --textmode converts LF only; a bare CR is hashed as it is (and must stay)."""
    data = b"binary\rdata\r\nwith\nmixed line ends\r"
    signature = keys.sign(keys.sara, data, textmode=True)
    assert keys.oracle(tmp_path, data, signature) == "GOODSIG"
    assert _verify(data, signature, [keys.public[keys.sara]], backend).valid
    changed = data.replace(b"\r", b"\r\n")
    assert keys.oracle(tmp_path, changed, signature) == "BADSIG"
    result = _verify(changed, signature, [keys.public[keys.sara]], backend)
    assert result.status is SignatureStatus.BAD_SIGNATURE


@pytest.mark.parametrize("backend", BACKENDS)
def test_unregistered_signer_is_unknown(keys: Keys, backend: str) -> None:
    signature = keys.sign(keys.other, DOCUMENT)
    result = _verify(DOCUMENT, signature, [keys.public[keys.sara]], backend)
    assert result.status is SignatureStatus.UNKNOWN_SIGNER
    assert result.signer_fingerprint is None
    assert result.status.reply == (550, "5.7.1")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("position", [0, len(DOCUMENT) // 2, len(DOCUMENT) - 1])
def test_one_changed_byte_is_a_bad_signature(
    keys: Keys, tmp_path: Path, backend: str, position: int
) -> None:
    signature = keys.sign(keys.sara, DOCUMENT, armor=True)
    changed = bytearray(DOCUMENT)
    changed[position] ^= 0x01
    assert keys.oracle(tmp_path, bytes(changed), signature) == "BADSIG"
    result = _verify(bytes(changed), signature, [keys.public[keys.sara]], backend)
    assert result.status is SignatureStatus.BAD_SIGNATURE
    assert result.signer_fingerprint == keys.sara
    assert result.status.reply == (554, "5.7.5")


@pytest.mark.parametrize("backend", BACKENDS)
def test_subkey_signature_reports_the_primary_fingerprint(
    keys: Keys, tmp_path: Path, backend: str
) -> None:
    signature = keys.sign(keys.parent, DOCUMENT)  # gpg picks the signing subkey
    assert keys.oracle(tmp_path, DOCUMENT, signature) == "GOODSIG"
    result = _verify(DOCUMENT, signature, [keys.public[keys.parent]], backend)
    assert result.status is SignatureStatus.VALID, result.reason
    assert result.signer_fingerprint == keys.parent
    assert result.employee_codes == ("MOH-000050-X",)
    later = now_utc() + datetime.timedelta(days=400)  # the key's one year has run out
    assert _verify(DOCUMENT, signature, [keys.public[keys.parent]], backend, later).status is (
        SignatureStatus.UNTRUSTED
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_expired_key_is_judged_at_when(keys: Keys, tmp_path: Path, backend: str) -> None:
    """A key that expired is refused now; a signature checked at a time within the
    key's life (re-verifying an archived message) is still good."""
    signature = keys.sign(keys.expired, DOCUMENT, extra=("--faked-system-time", "20200101T060000!"))
    assert keys.oracle(tmp_path, DOCUMENT, signature) == "EXPKEYSIG"
    certs = [keys.public[keys.expired]]
    now = _verify(DOCUMENT, signature, certs, backend)
    assert now.status is SignatureStatus.UNTRUSTED
    assert now.reason == "the signing key has expired"
    then = datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.UTC)
    past = _verify(DOCUMENT, signature, certs, backend, then)
    assert past.status is SignatureStatus.VALID, past.reason


@pytest.mark.parametrize("backend", BACKENDS)
def test_fresh_key_past_its_expiry_and_signature_from_the_future(keys: Keys, backend: str) -> None:
    signature = keys.sign(keys.sara, DOCUMENT)
    certs = [keys.public[keys.sara]]
    late = _verify(DOCUMENT, signature, certs, backend, now_utc() + datetime.timedelta(days=3 * 365))
    assert late.status is SignatureStatus.UNTRUSTED
    early = _verify(DOCUMENT, signature, certs, backend, now_utc() - datetime.timedelta(days=1))
    assert early.status is SignatureStatus.UNTRUSTED
    assert early.reason == "the signature is dated in the future"


@pytest.mark.parametrize("backend", BACKENDS)
def test_revoked_key_is_untrusted(keys: Keys, tmp_path: Path, backend: str) -> None:
    assert keys.oracle(tmp_path, DOCUMENT, keys.revoked_signature) == "REVKEYSIG"
    result = _verify(DOCUMENT, keys.revoked_signature, [keys.public[keys.revoked]], backend)
    assert result.status is SignatureStatus.UNTRUSTED
    assert result.reason == "the signing key has been revoked"
    assert result.signer_fingerprint == keys.revoked


GARBAGE = [
    b"",
    b"   \r\n",
    b"garbage that is not OpenPGP",
    b"-----BEGIN PGP SIGNATURE-----\n\nzzzz\n-----END PGP SIGNATURE-----\n",
    bytes([0x89, 0xFF, 0xFF]) + b"\x00" * 10,
    b"\xc2" + b"\xff" * 5000,
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_signature_is_malformed(keys: Keys, backend: str, garbage: bytes) -> None:
    result = _verify(DOCUMENT, garbage, [keys.public[keys.sara]], backend)
    assert result.status is SignatureStatus.MALFORMED
    assert result.reason.isascii()


def test_not_a_signature_is_malformed(keys: Keys) -> None:
    genuine = keys.sign(keys.sara, DOCUMENT)
    cases = {
        "public key": keys.public[keys.sara],
        "truncated": genuine[: len(genuine) // 2],
        "inline message": keys.gpg("--local-user", keys.sara, "--sign", "-o", "-", data=DOCUMENT),
        "too large": genuine * 2000,
    }
    for name, blob in cases.items():
        result = verify_openpgp_detached(DOCUMENT, blob, [keys.public[keys.sara]], when=now_utc())
        assert result.status is SignatureStatus.MALFORMED, name


def test_registered_keys_binary_hostile_or_secret(keys: Keys) -> None:
    signature = keys.sign(keys.sara, DOCUMENT)
    binary = keys.gpg("--export", keys.sara)
    secret = keys.gpg("--export-secret-keys", "--armor", keys.sara)
    ok = verify_openpgp_detached(DOCUMENT, signature, [b"junk", b"", binary], when=now_utc())
    assert ok.status is SignatureStatus.VALID and ok.signer_fingerprint == keys.sara
    # Private key material is never used as a registered key.
    only_secret = verify_openpgp_detached(DOCUMENT, signature, [secret], when=now_utc())
    assert only_secret.status is SignatureStatus.UNKNOWN_SIGNER
    none = verify_openpgp_detached(DOCUMENT, signature, [], when=now_utc())
    assert none.status is SignatureStatus.UNKNOWN_SIGNER


@pytest.mark.parametrize("backend", BACKENDS)
def test_several_signatures_one_registered(keys: Keys, backend: str) -> None:
    both = keys.sign(keys.other, DOCUMENT) + keys.sign(keys.sara, DOCUMENT)
    result = _verify(DOCUMENT, both, [keys.public[keys.sara]], backend)
    assert result.status is SignatureStatus.VALID
    assert result.signer_fingerprint == keys.sara


def test_caller_errors_raise(keys: Keys) -> None:
    signature = keys.sign(keys.sara, DOCUMENT)
    with pytest.raises(ValueError):
        verify_openpgp_detached(DOCUMENT, signature, [], when=datetime.datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        verify_openpgp_detached(DOCUMENT, signature, [], when=now_utc(), backend="pgp")  # type: ignore[arg-type]


def test_sequoia_is_fast_for_a_100_kb_document(keys: Keys) -> None:
    document = bytes(range(256)) * 400
    signature = keys.sign(keys.sara, document)
    certs = [keys.public[keys.sara]]
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        result = verify_openpgp_detached(document, signature, certs, when=now_utc())
        assert result.status is SignatureStatus.VALID
    per_call = (time.perf_counter() - start) / rounds
    assert per_call < 0.05, f"{per_call * 1000:.1f} ms per verification"
