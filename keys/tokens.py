"""Verification tokens: the signed, compact proof of issuance printed in the QR code.

Owns: the token's byte layout, its text encoding, issuing (Ed25519 signing) and
offline verification by key id. Must not: do I/O, look up revocation status, or
know URLs; the exact format is documented in docs/TOKENS.md.

Layout (version 1, all integers big-endian; see docs/TOKENS.md for the rationale):

    version(1) key_id(8) issued_at(4, Unix seconds) year(2) serial(4)
    agency_len(1) agency(agency_len, ASCII) document_count(1)
    digests(16 each, at most MAX_TOKEN_DIGESTS) signature(64)

The Ed25519 signature (RFC 8032) covers SIGNING_CONTEXT + every byte before it.
The text form is RFC 4648 §6 base32, upper-case, without padding: it stays in the
QR alphanumeric set (ISO/IEC 18004 §7.4.4) and is read case-insensitively.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from policies.codes import AGENCY_CODE_RE

TOKEN_VERSION = 1
KEY_ID_BYTES = 8
DIGEST_BYTES = 16  # each document's SHA-256, truncated (docs/TOKENS.md, "Security")
MAX_TOKEN_DIGESTS = 10  # digest slots; more documents share the last slot
MAX_DOCUMENTS = 255
SIGNATURE_BYTES = 64
MIN_YEAR, MAX_YEAR = 2000, 9999
MAX_SERIAL = 2**32 - 1
MAX_ISSUED_AT = 2**32 - 1  # seconds since 1970-01-01 UTC: until 2106-02-07
# Domain separation: a signature made for a token is never valid for anything else
# the same key signs (receipts, for instance).
SIGNING_CONTEXT = b"barid-token\x00"
_REST_CONTEXT = b"barid-token-rest\x00"

MAX_AGENCY_CHARS = 67  # policies.codes.AGENCY_CODE_RE: 16 + 3 x (1 + 16)

_HEAD = struct.Struct(">B8sIHIB")  # version, key id, issued_at, year, serial, agency_len
_MIN_BYTES = _HEAD.size + 2 + 1 + SIGNATURE_BYTES  # shortest agency code has 2 chars
_MAX_BYTES = _HEAD.size + MAX_AGENCY_CHARS + 1 + MAX_TOKEN_DIGESTS * DIGEST_BYTES + SIGNATURE_BYTES
MAX_TOKEN_CHARS = -(-_MAX_BYTES * 8 // 5)


class TokenProblem(enum.Enum):
    """Why a token was refused; `TokenError.message` says it in words."""

    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported-version"
    UNKNOWN_KEY = "unknown-key"
    BAD_SIGNATURE = "bad-signature"


@dataclass(frozen=True, slots=True)
class TokenError:
    """A refused token (a value, not an exception): forged, damaged or unknown."""

    problem: TokenProblem
    message: str


@dataclass(frozen=True, slots=True)
class TokenContents:
    """What a token says. Digests are the first DIGEST_BYTES of each SHA-256.

    `document_digests` holds one digest per document when `document_count` is at
    most MAX_TOKEN_DIGESTS; otherwise the first MAX_TOKEN_DIGESTS - 1 documents'
    digests and, last, `rest_digest(...)` over the remaining documents' full digests.
    """

    version: int
    key_id: str  # 16 lower-case hex characters, as keys.gateway_keys.key_id
    issued_at: dt.datetime  # aware, UTC, whole seconds
    agency: str
    year: int
    serial: int
    document_count: int
    document_digests: tuple[bytes, ...]

    @property
    def registry_parts(self) -> tuple[str, int, int]:
        """(agency, year, serial): the registry number's parts."""
        return self.agency, self.year, self.serial

    def covers_document(self, sha256_hex: str) -> bool:
        """True if a document with this SHA-256 has its own digest slot in the token."""
        slots = self.document_digests
        if self.document_count > MAX_TOKEN_DIGESTS:
            slots = slots[:-1]
        try:
            wanted = bytes.fromhex(sha256_hex)[:DIGEST_BYTES]
        except ValueError:
            return False
        return len(wanted) == DIGEST_BYTES and wanted in slots

    def covers_documents(self, sha256_hexes: Sequence[str]) -> bool:
        """True if these are exactly the message's documents, in order."""
        try:
            return len(sha256_hexes) == self.document_count and self.document_digests == (
                token_digests(sha256_hexes)
            )
        except ValueError:
            return False


def rest_digest(full_digests: Sequence[bytes]) -> bytes:
    """The shared last slot for documents beyond the first MAX_TOKEN_DIGESTS - 1."""
    return hashlib.sha256(_REST_CONTEXT + b"".join(full_digests)).digest()[:DIGEST_BYTES]


def token_digests(sha256_hexes: Sequence[str]) -> tuple[bytes, ...]:
    """The digest slots for documents with these SHA-256 values (hex), in order."""
    if len(sha256_hexes) > MAX_DOCUMENTS:
        raise ValueError(f"a token covers at most {MAX_DOCUMENTS} documents")
    full = []
    for value in sha256_hexes:
        digest = bytes.fromhex(value)
        if len(digest) != 32:
            raise ValueError(f"not a SHA-256 digest: {value!r}")
        full.append(digest)
    if len(full) <= MAX_TOKEN_DIGESTS:
        return tuple(d[:DIGEST_BYTES] for d in full)
    head = MAX_TOKEN_DIGESTS - 1
    return (*(d[:DIGEST_BYTES] for d in full[:head]), rest_digest(full[head:]))


def _key_id_bytes(key_id: str) -> bytes:
    try:
        raw = bytes.fromhex(key_id)
    except ValueError:
        raw = b""
    if len(raw) != KEY_ID_BYTES:
        raise ValueError(f"key id must be {2 * KEY_ID_BYTES} hex characters, got {key_id!r}")
    return raw


def issue_token(
    signing_key: ed25519.Ed25519PrivateKey,
    signing_key_id: str,
    *,
    agency: str,
    year: int,
    serial: int,
    issued_at: dt.datetime,
    document_sha256: Sequence[str],
) -> str:
    """Build and sign a token; raises ValueError for out-of-range parts.

    `issued_at` must be aware; it is recorded in whole seconds (fractions dropped).
    """
    if not AGENCY_CODE_RE.fullmatch(agency):
        raise ValueError(f"invalid agency code {agency!r}")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"year {year} out of range {MIN_YEAR}..{MAX_YEAR}")
    if not 1 <= serial <= MAX_SERIAL:
        raise ValueError(f"serial {serial} out of range 1..{MAX_SERIAL}")
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    seconds = int(issued_at.timestamp())
    if not 0 <= seconds <= MAX_ISSUED_AT:
        raise ValueError("issued_at out of range 1970..2106")
    agency_bytes = agency.encode("ascii")
    digests = token_digests(document_sha256)
    body = b"".join(
        (
            _HEAD.pack(
                TOKEN_VERSION,
                _key_id_bytes(signing_key_id),
                seconds,
                year,
                serial,
                len(agency_bytes),
            ),
            agency_bytes,
            bytes((len(document_sha256),)),
            *digests,
        )
    )
    signature = signing_key.sign(SIGNING_CONTEXT + body)
    return encode_token_bytes(body + signature)


def encode_token_bytes(raw: bytes) -> str:
    """Token bytes as text: base32 (RFC 4648 §6), upper-case, no padding."""
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def decode_token_bytes(token: str) -> bytes | TokenError:
    """The token's bytes; any case is accepted, but only the canonical encoding.

    A non-canonical spelling (non-zero unused bits in the last character, wrong
    length, padding, spaces) is refused, so each token has exactly one text form
    up to letter case and a changed character can never decode to the same bytes.
    """
    text = token.upper()
    if not 0 < len(text) <= MAX_TOKEN_CHARS or not text.isascii():
        return _malformed()
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return _malformed()
    if encode_token_bytes(raw) != text:
        return _malformed()
    return raw


def _malformed() -> TokenError:
    return TokenError(TokenProblem.MALFORMED, "forged or damaged: not a well-formed Barid token")


def _parse(raw: bytes) -> tuple[TokenContents, bytes, bytes] | TokenError:
    """(contents, signed body, signature) of token bytes, without verifying."""
    if len(raw) < _MIN_BYTES:
        return _malformed()
    version = raw[0]
    if version != TOKEN_VERSION:
        return TokenError(
            TokenProblem.UNSUPPORTED_VERSION,
            f"forged or damaged: unknown token version {version}",
        )
    _, key_id, seconds, year, serial, agency_len = _HEAD.unpack_from(raw)
    offset = _HEAD.size
    agency_bytes = raw[offset : offset + agency_len]
    offset += agency_len
    if offset >= len(raw):
        return _malformed()
    count = raw[offset]
    offset += 1
    slots = min(count, MAX_TOKEN_DIGESTS)
    body_end = offset + slots * DIGEST_BYTES
    if body_end + SIGNATURE_BYTES != len(raw):
        return _malformed()
    agency = agency_bytes.decode("ascii", errors="replace")
    if not AGENCY_CODE_RE.fullmatch(agency) or not MIN_YEAR <= year <= MAX_YEAR or serial == 0:
        return _malformed()
    digests = tuple(
        raw[offset + i * DIGEST_BYTES : offset + (i + 1) * DIGEST_BYTES] for i in range(slots)
    )
    contents = TokenContents(
        version=version,
        key_id=key_id.hex(),
        issued_at=dt.datetime.fromtimestamp(seconds, dt.UTC),
        agency=agency,
        year=year,
        serial=serial,
        document_count=count,
        document_digests=digests,
    )
    return contents, raw[:body_end], raw[body_end:]


def decode_token_unverified(token: str) -> TokenContents | TokenError:
    """What the token claims, WITHOUT checking its signature (diagnostics only)."""
    raw = decode_token_bytes(token)
    if isinstance(raw, TokenError):
        return raw
    parsed = _parse(raw)
    return parsed if isinstance(parsed, TokenError) else parsed[0]


def verify_token(
    token: str, keys: Mapping[str, ed25519.Ed25519PublicKey]
) -> TokenContents | TokenError:
    """Check a token offline against the published public keys, by key id.

    `keys` maps key ids (16 hex characters) to Ed25519 public keys; include retired
    keys so tokens issued before a rotation still verify. Revocation is an online
    question and is not answered here.
    """
    raw = decode_token_bytes(token)
    if isinstance(raw, TokenError):
        return raw
    parsed = _parse(raw)
    if isinstance(parsed, TokenError):
        return parsed
    contents, body, signature = parsed
    public_key = keys.get(contents.key_id)
    if public_key is None:
        return TokenError(
            TokenProblem.UNKNOWN_KEY,
            f"forged or damaged: signed with unknown key {contents.key_id}",
        )
    try:
        public_key.verify(signature, SIGNING_CONTEXT + body)
    except InvalidSignature:
        return TokenError(TokenProblem.BAD_SIGNATURE, "forged or damaged: invalid signature")
    return contents
