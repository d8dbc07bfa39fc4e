"""OpenPGP detached signatures (RFC 9580 / RFC 4880; PGP/MIME per RFC 3156) by registered keys.

Owns: checking that exactly the given bytes were signed by one of an employee's
registered OpenPGP keys, in-process with pysequoia or through gpg in a throwaway
home holding only those keys. Must not: re-serialise or re-canonicalise the data,
trust any key that is not registered, or let exception text into a result.
"""

from __future__ import annotations

import datetime
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gnupg
import pysequoia
from pysequoia.packet import HashAlgorithm, Packet, PacketPile, SignatureType, Tag

from keys.identities import IdentityError, inspect_identity
from keys.signatures.result import (
    CLOCK_SKEW,
    SignatureResult,
    SignatureStatus,
    check_when,
    failure,
)

OpenPgpBackend = Literal["sequoia", "gnupg"]

MAX_SIGNATURE_BYTES = 64 * 1024
MAX_SIGNATURES = 8  # signature packets in one detached signature (several signers)
MAX_REGISTERED_BYTES = 1024 * 1024

# RFC 9580 §9.5: MD5 and SHA-1 MUST NOT be used for new signatures; RIPEMD-160 with them.
_WEAK_HASHES = (HashAlgorithm.MD5, HashAlgorithm.SHA1, HashAlgorithm.RipeMD)
# A detached document signature is of type 0x00 (binary) or 0x01 (canonical text,
# RFC 9580 §5.2.1.2: line endings hashed as CRLF; trailing whitespace is kept).
_DOCUMENT_TYPES = (SignatureType.Binary, SignatureType.Text)
_BARE_CR = re.compile(rb"\r(?!\n)")
_GPG_OPTIONS = ["--no-autostart", "--no-auto-key-retrieve", "--trust-model", "always"]
_GPG_FAILED = "gpg could not check the signature"

_FAILURE_RANK = {
    SignatureStatus.UNTRUSTED: 0,
    SignatureStatus.BAD_SIGNATURE: 1,
    SignatureStatus.UNKNOWN_SIGNER: 2,
    SignatureStatus.MALFORMED: 3,
}


@dataclass(frozen=True, slots=True)
class _Subkey:
    fingerprint: str  # lower hex, as pysequoia reports it
    expires: datetime.datetime | None


@dataclass(frozen=True, slots=True)
class _RegisteredKey:
    cert: pysequoia.Cert
    fingerprint: str  # lower hex
    subkeys: tuple[_Subkey, ...]
    employee_codes: tuple[str, ...]
    addresses: tuple[str, ...]

    def fingerprints(self) -> list[str]:
        return [self.fingerprint, *(sub.fingerprint for sub in self.subkeys)]

    def matches(self, issuer: str) -> bool:
        """Whether an issuer fingerprint or 16-hex key ID names this key or a subkey."""
        return any(fpr == issuer or fpr.endswith(issuer) for fpr in self.fingerprints())

    def result(self, status: SignatureStatus, reason: str) -> SignatureResult:
        return SignatureResult(
            status=status,
            reason=reason,
            signer_fingerprint=self.fingerprint.upper(),
            employee_codes=self.employee_codes,
            addresses=self.addresses,
        )


def _subkeys(packets: Sequence[Packet]) -> tuple[_Subkey, ...]:
    """Subkeys with their expiry from the newest binding signature (RFC 9580 §5.2.3.13).

    The binding itself is checked by pysequoia when it accepts a signature made by
    the subkey; the expiry read here only tightens the decision at `when`.
    """
    found: list[_Subkey] = []
    current: Packet | None = None
    newest: datetime.datetime | None = None
    expires: datetime.datetime | None = None

    def close() -> None:
        if current is not None and current.fingerprint is not None:
            found.append(_Subkey(current.fingerprint.lower(), expires))

    for packet in packets:
        if packet.tag == Tag.PublicSubkey:
            close()
            current, newest, expires = packet, None, None
        elif packet.tag in (Tag.UserID, Tag.UserAttribute):
            close()
            current = None
        elif current is not None and packet.tag == Tag.Signature:
            if packet.signature_type != SignatureType.SubkeyBinding:
                continue
            created = packet.signature_created
            if created is None or (newest is not None and created <= newest):
                continue
            newest = created
            period = packet.key_validity_period
            key_created = current.key_created
            expires = key_created + period if period and key_created is not None else None
    close()
    return tuple(found)


def _registered_key(cert: pysequoia.Cert) -> _RegisteredKey | None:
    try:
        binary = bytes(cert)
        subkeys = _subkeys(list(PacketPile.from_bytes(binary)))
        fingerprint = cert.fingerprint.lower()
    except Exception:  # native parser: any failure means "not a usable key"
        return None
    try:
        identity = inspect_identity(binary)
        codes, addresses = identity.employee_codes, identity.addresses
    except IdentityError:
        codes, addresses = (), ()
    return _RegisteredKey(cert, fingerprint, subkeys, codes, addresses)


def _load_registered(certs: Sequence[bytes]) -> list[_RegisteredKey]:
    """The registered public keys; unreadable entries and secret keys are skipped."""
    keys: list[_RegisteredKey] = []
    for blob in certs:
        if not blob or len(blob) > MAX_REGISTERED_BYTES:
            continue
        try:
            tags = [packet.tag for packet in PacketPile.from_bytes(blob)]
            secret = any(tag in (Tag.SecretKey, Tag.SecretSubkey) for tag in tags)
            parsed = [] if secret else pysequoia.Cert.split_bytes(blob)
        except Exception:  # native parser, as above
            parsed = []
        keys.extend(key for key in map(_registered_key, parsed) if key is not None)
    return keys


@dataclass(frozen=True, slots=True)
class _Signature:
    """One signature packet, read once: pysequoia's accessors raise on odd values."""

    raw: bytes
    text: bool  # type 0x01; else 0x00
    weak_hash: bool
    issuers: tuple[str, ...]  # issuer fingerprint and key ID, lower hex
    created: datetime.datetime | None
    expires: datetime.datetime | None


def _read_signature(packet: Packet) -> _Signature | None:
    if packet.tag != Tag.Signature or packet.signature_type not in _DOCUMENT_TYPES:
        return None
    issuers = (packet.issuer_fingerprint, packet.issuer_key_id)
    return _Signature(
        raw=bytes(packet),
        text=packet.signature_type == SignatureType.Text,
        weak_hash=packet.hash_algorithm in _WEAK_HASHES,
        issuers=tuple(i.lower() for i in issuers if i),
        created=packet.signature_created,
        expires=packet.signature_expiration_time,
    )


def _signatures(signature: bytes) -> list[_Signature] | SignatureResult:
    if not signature.strip():
        return failure(SignatureStatus.MALFORMED, "the signature is empty")
    if len(signature) > MAX_SIGNATURE_BYTES:
        return failure(SignatureStatus.MALFORMED, "the signature is too large")
    try:
        packets = [p for p in PacketPile.from_bytes(signature) if p.tag != Tag.Marker]
        if len(packets) > MAX_SIGNATURES:
            return failure(SignatureStatus.MALFORMED, "too many signatures")
        read = [_read_signature(p) for p in packets]
    except Exception:  # native parser: hostile bytes may fail in many ways
        return failure(SignatureStatus.MALFORMED, "the OpenPGP signature cannot be parsed")
    signatures = [sig for sig in read if sig is not None]
    if not signatures or len(signatures) != len(read):
        return failure(SignatureStatus.MALFORMED, "not a detached signature over a document")
    return signatures


# ---------------------------------------------------------------- crypto backends

_CryptoCheck = Callable[[bytes, _Signature, _RegisteredKey], SignatureResult | None]


def _sequoia_check(data: bytes, sig: _Signature, key: _RegisteredKey) -> SignatureResult | None:
    """None when pysequoia finds the signature good and made by `key`, else a verdict.

    For a text signature over data with a bare CR the two implementations differ:
    pysequoia hashes a bare CR as a line end (CRLF), gpg, which makes such
    signatures (`--textmode`), converts only LF. That case is left to gpg.
    """
    if sig.text and _BARE_CR.search(data):
        return _gnupg_check(data, sig, key)

    def store(_key_ids: list[str]) -> list[pysequoia.Cert]:
        return [key.cert]

    try:
        verified = pysequoia.verify(
            bytes=data, store=store, signature=pysequoia.Sig.from_bytes(sig.raw)
        )
        signers = [str(sig.certificate).lower() for sig in verified.valid_sigs]
    except Exception:  # "no valid signatures" and any native failure alike
        return key.result(
            SignatureStatus.BAD_SIGNATURE, "the signature does not match the signed data"
        )
    if key.fingerprint not in signers:
        return key.result(SignatureStatus.BAD_SIGNATURE, "the signature was not made by this key")
    return None


def _gpg_status(stderr: str) -> dict[str, list[list[str]]]:
    lines: dict[str, list[list[str]]] = {}
    for line in stderr.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, *args = line[9:].split()
            lines.setdefault(keyword, []).append(args)
    return lines


def _gnupg_check(data: bytes, sig: _Signature, key: _RegisteredKey) -> SignatureResult | None:
    """The same check by gpg (RFC 4880 status lines), in a home holding only `key`.

    gpg judges key expiry at the real clock; expiry at `when` is decided afterwards
    for both backends alike, so EXPKEYSIG followed by VALIDSIG counts as good here.
    """
    home = Path(tempfile.mkdtemp(prefix="bv"))
    try:
        home.chmod(0o700)
        gpg = gnupg.GPG(gnupghome=str(home), options=list(_GPG_OPTIONS))
        imported = gpg.import_keys(bytes(key.cert))
        if not imported.fingerprints:
            return key.result(SignatureStatus.BAD_SIGNATURE, _GPG_FAILED)
        signature_file = home / "document.sig"
        signature_file.write_bytes(sig.raw)
        verified = gpg.verify_data(str(signature_file), data)
        status = _gpg_status(str(verified.stderr or ""))
    except (OSError, ValueError):
        return key.result(SignatureStatus.BAD_SIGNATURE, _GPG_FAILED)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if "REVKEYSIG" in status:
        return key.result(SignatureStatus.UNTRUSTED, "the signing key has been revoked")
    good = [args for args in status.get("VALIDSIG", []) if len(args) >= 10]
    if not any(args[9].lower() == key.fingerprint for args in good):
        return key.result(
            SignatureStatus.BAD_SIGNATURE, "the signature does not match the signed data"
        )
    return None


_BACKENDS: dict[str, _CryptoCheck] = {"sequoia": _sequoia_check, "gnupg": _gnupg_check}


# ---------------------------------------------------------------- the decision


def _check_one(
    data: bytes,
    sig: _Signature,
    registered: list[_RegisteredKey],
    when: datetime.datetime,
    crypto: _CryptoCheck,
) -> SignatureResult:
    issuers = sig.issuers
    if issuers:
        candidates = [k for k in registered if any(k.matches(i) for i in issuers)]
    else:
        candidates = list(registered)  # RFC 9580 allows no issuer: try each registered key
    if not candidates:
        return failure(
            SignatureStatus.UNKNOWN_SIGNER, "signed by a key that is not registered for the sender"
        )
    outcomes = [_check_with_key(data, sig, key, when, crypto) for key in candidates]
    return _best(outcomes)


def _check_with_key(
    data: bytes,
    sig: _Signature,
    key: _RegisteredKey,
    when: datetime.datetime,
    crypto: _CryptoCheck,
) -> SignatureResult:
    if sig.weak_hash:
        return key.result(SignatureStatus.BAD_SIGNATURE, "the signature uses a weak hash")
    try:
        revoked = key.cert.is_revoked
    except Exception:  # native accessor on a registered key
        revoked = True
    if revoked:
        return key.result(SignatureStatus.UNTRUSTED, "the signing key has been revoked")
    refused = crypto(data, sig, key)
    if refused is not None:
        return refused
    return _check_time(sig, key, when)


def _check_time(sig: _Signature, key: _RegisteredKey, when: datetime.datetime) -> SignatureResult:
    """The key, the signing subkey and the signature must all be alive at `when`."""
    created = sig.created
    if created is not None and created > when + CLOCK_SKEW:
        return key.result(SignatureStatus.UNTRUSTED, "the signature is dated in the future")
    sig_expires = sig.expires
    if sig_expires is not None and sig_expires <= when:
        return key.result(SignatureStatus.UNTRUSTED, "the signature has expired")
    try:
        key_expires = key.cert.expiration
    except Exception:  # native accessor on a registered key
        return key.result(SignatureStatus.UNTRUSTED, "the signing key has no valid self-signature")
    if key_expires is not None and key_expires <= when:
        return key.result(SignatureStatus.UNTRUSTED, "the signing key has expired")
    issuers = sig.issuers
    for sub in key.subkeys:
        named = any(sub.fingerprint == i or sub.fingerprint.endswith(i) for i in issuers)
        if named and sub.expires is not None and sub.expires <= when:
            return key.result(SignatureStatus.UNTRUSTED, "the signing subkey has expired")
    return key.result(SignatureStatus.VALID, "good signature")


def _best(outcomes: Sequence[SignatureResult]) -> SignatureResult:
    """The first VALID outcome, else the most specific failure."""
    for outcome in outcomes:
        if outcome.valid:
            return outcome
    return min(outcomes, key=lambda r: _FAILURE_RANK[r.status])


def verify_openpgp_detached(
    data: bytes,
    signature: bytes,
    certs: Sequence[bytes],
    *,
    when: datetime.datetime,
    backend: OpenPgpBackend = "sequoia",
) -> SignatureResult:
    """Verify a detached OpenPGP signature over exactly `data`.

    `certs` are the sender's registered public keys (armored or binary); the
    signer must be one of them or a signing subkey bound to one (the primary
    fingerprint is reported). Signatures of type 0x00 hash `data` as is; type
    0x01 (gpg --textmode, RFC 3156 PGP/MIME) hash it with line endings as CRLF,
    which `data` from a MIME part already has. With several signatures, one
    good signature by a registered key suffices. The key must be unrevoked and
    unexpired at `when` (timezone-aware). Never raises on hostile input.
    """
    check_when(when)
    crypto = _BACKENDS.get(backend)
    if crypto is None:
        raise ValueError(f"unknown OpenPGP backend {backend!r}")
    signatures = _signatures(signature)
    if isinstance(signatures, SignatureResult):
        return signatures
    registered = _load_registered(certs)
    if not registered:
        return failure(
            SignatureStatus.UNKNOWN_SIGNER, "the sender has no usable registered OpenPGP key"
        )
    return _best([_check_one(data, sig, registered, when, crypto) for sig in signatures])
