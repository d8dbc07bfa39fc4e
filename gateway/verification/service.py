"""Public verification: is this token, or this document, one the gateway issued?

Owns: the verdict on a token (valid, revoked, unknown, forged) and on a
document's bytes (match, no-match), decided by pure functions from the offline
token check and the stored facts; the two read-only queries fetching those facts;
the list of published token keys. Must not: write to the database, know HTTP, or
disclose more than docs/CONTRACT.md §6's minimal set: the issuing agency, registry
number, issue time, the documents' names and SHA-256, the sender's name and the
status. Never content, subject, recipients, addresses or trace codes.

Order of checks for a token: the signature first (offline, no database work for
a forgery), then the stored message of the token's registry number, whose stored
token must be this very token and whose documents must be the ones it names.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.errors import DATABASE_ERRORS
from gateway.store.models import Agency, Employee, Message, MessageDocument
from gateway.store.registry import format_registry
from keys.tokens import MAX_TOKEN_CHARS, TokenContents, TokenError, TokenProblem, verify_token

log = logging.getLogger("barid.verification")

TokenStatus = Literal["valid", "revoked", "unknown", "forged"]
DocumentStatus = Literal["match", "no-match"]
MAX_DOCUMENT_MATCHES = 20
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # the largest document POST /api/v1/verify/document takes
# Hashing more than this many bytes at once goes to a worker thread.
_HASH_INLINE_BYTES = 1 << 20


class VerificationUnavailable(Exception):
    """The database could not answer; nothing is known about the token or document."""


# ---------------------------------------------------------------- facts and verdicts


@dataclass(frozen=True, slots=True)
class AgencyFacts:
    code: str
    name_en: str
    name_ar: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "name_en": self.name_en, "name_ar": self.name_ar}


@dataclass(frozen=True, slots=True)
class SenderFacts:
    name_en: str
    name_ar: str

    def as_dict(self) -> dict[str, str]:
        return {"name_en": self.name_en, "name_ar": self.name_ar}


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    name: str
    sha256: str  # full, lower-case hex

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class Revocation:
    at: str | None  # YYYY-MM-DDTHH:MM:SSZ
    reason: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {"at": self.at, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class StoredFacts:
    """What the database holds about the message of a registry number (the only
    columns read; nothing here is disclosed unless the verdict says so)."""

    token: str
    status: str  # valid | revoked
    revoked_at: str | None
    revoked_reason: str | None
    agency: AgencyFacts
    sender: SenderFacts
    documents: tuple[DocumentFacts, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer about one token; `as_dict` is the public JSON contract."""

    status: TokenStatus
    problem: TokenProblem | None = None
    registry: str | None = None
    agency: AgencyFacts | None = None
    issued_at: dt.datetime | None = None
    sender: SenderFacts | None = None
    documents: tuple[DocumentFacts, ...] = ()
    revoked: Revocation | None = None
    key_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "problem": None if self.problem is None else self.problem.value,
            "registry": self.registry,
            "agency": None if self.agency is None else self.agency.as_dict(),
            "issued_at": None if self.issued_at is None else utc_seconds(self.issued_at),
            "sender": None if self.sender is None else self.sender.as_dict(),
            "documents": [d.as_dict() for d in self.documents],
            "revoked": None if self.revoked is None else self.revoked.as_dict(),
            "key_id": self.key_id,
        }


@dataclass(frozen=True, slots=True)
class DocumentMatch:
    registry: str
    status: str  # valid | revoked
    agency: AgencyFacts

    def as_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "status": self.status, "agency": self.agency.as_dict()}


@dataclass(frozen=True, slots=True)
class DocumentVerdict:
    """The answer about one document's bytes; `as_dict` is the public JSON contract."""

    status: DocumentStatus
    sha256: str
    matches: tuple[DocumentMatch, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "sha256": self.sha256,
            "matches": [m.as_dict() for m in self.matches],
        }


# ---------------------------------------------------------------- pure decisions


def utc_seconds(moment: dt.datetime) -> str:
    """YYYY-MM-DDTHH:MM:SSZ for an aware datetime."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stored_time(text: str | None) -> str | None:
    """A stored timestamp (`db.utcnow` text) in whole seconds; None if unreadable."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return utc_seconds(moment)


def forged(problem: TokenProblem) -> Verdict:
    """A token that is not one of ours: nothing else is said about it."""
    return Verdict(status="forged", problem=problem)


def registry_of(contents: TokenContents) -> str:
    return format_registry(*contents.registry_parts)


def decide(token: str, contents: TokenContents, stored: StoredFacts | None) -> Verdict:
    """The verdict on a correctly signed token, given the stored facts of its
    registry number (None when no message has it).

    "unknown" unless the stored token is this token (letter case aside) and the
    stored documents are exactly the ones the token names: a genuine signature
    alone never vouches for database rows it does not cover.
    """
    registry = registry_of(contents)
    if (
        stored is None
        or stored.token.upper() != token.upper()
        or not contents.covers_documents([d.sha256 for d in stored.documents])
    ):
        return Verdict(
            status="unknown",
            registry=registry,
            issued_at=contents.issued_at,
            key_id=contents.key_id,
        )
    revoked = None
    status: TokenStatus = "valid"
    if stored.status != "valid":
        status = "revoked"
        revoked = Revocation(at=stored_time(stored.revoked_at), reason=stored.revoked_reason)
    return Verdict(
        status=status,
        registry=registry,
        agency=stored.agency,
        issued_at=contents.issued_at,
        sender=stored.sender,
        documents=stored.documents,
        revoked=revoked,
        key_id=contents.key_id,
    )


def document_verdict(sha256_hex: str, matches: Sequence[DocumentMatch]) -> DocumentVerdict:
    if not matches:
        return DocumentVerdict(status="no-match", sha256=sha256_hex)
    return DocumentVerdict(
        status="match", sha256=sha256_hex, matches=tuple(matches[:MAX_DOCUMENT_MATCHES])
    )


def public_key_b64url(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


# ---------------------------------------------------------------- the service


class KeySource(Protocol):
    """Token keys that may change while the service runs (gateway.serve.key_ring)."""

    def verification_keys(self) -> Mapping[str, Ed25519PublicKey]: ...

    def current_key_id(self) -> str: ...

    async def refresh_for_unknown(self) -> bool: ...


class VerificationService:
    """Answers public verification questions; read-only, safe to share between requests.

    `keys` maps key ids to every token key that may appear (current and retired,
    `GatewayKeys.verification_keys`); `current_key_id` is the one signing now.
    With `source`, both come from it instead, and a token naming a key id not known
    yet makes the source re-read the shared key set once before the verdict.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keys: Mapping[str, Ed25519PublicKey] | None = None,
        *,
        current_key_id: str | None = None,
        source: KeySource | None = None,
    ) -> None:
        self._sessions = sessions
        self._fixed_keys = dict(keys or {})
        self._fixed_current = current_key_id
        self._source = source

    @property
    def _keys(self) -> Mapping[str, Ed25519PublicKey]:
        return self._source.verification_keys() if self._source else self._fixed_keys

    @property
    def _current_key_id(self) -> str | None:
        return self._source.current_key_id() if self._source else self._fixed_current

    def published_keys(self) -> list[dict[str, str]]:
        """The token keys as published in keys.json: the current one first."""
        keys, current = self._keys, self._current_key_id
        ordered = sorted(keys, key=lambda kid: (kid != current, kid))
        return [
            {
                "kid": kid,
                "alg": "Ed25519",
                "public_key": public_key_b64url(keys[kid]),
                "status": "current" if kid == current else "retired",
            }
            for kid in ordered
        ]

    async def by_token(self, token: str) -> Verdict:
        """The verdict on a token; a forgery is decided without touching the database
        (but for one re-read of the key set, rate-limited, on an unknown key id)."""
        if len(token) > MAX_TOKEN_CHARS:
            return forged(TokenProblem.MALFORMED)
        checked = verify_token(token, self._keys)
        if (
            isinstance(checked, TokenError)
            and checked.problem is TokenProblem.UNKNOWN_KEY
            and self._source is not None
            and await self._source.refresh_for_unknown()
        ):
            checked = verify_token(token, self._keys)
        if isinstance(checked, TokenError):
            return forged(checked.problem)
        stored = await self._stored_facts(registry_of(checked))
        return decide(token, checked, stored)

    async def by_document(self, data: bytes) -> DocumentVerdict:
        """The messages holding a document with exactly these bytes (at most 20)."""
        if len(data) > _HASH_INLINE_BYTES:
            sha256_hex = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        else:
            sha256_hex = hashlib.sha256(data).hexdigest()
        return await self.by_sha256(sha256_hex)

    async def by_sha256(self, sha256_hex: str) -> DocumentVerdict:
        """As `by_document`, for a SHA-256 already computed (64 hex characters)."""
        sha256_hex = sha256_hex.lower()
        if len(sha256_hex) != 64 or any(c not in "0123456789abcdef" for c in sha256_hex):
            raise ValueError("not a SHA-256 digest in hex")
        return document_verdict(sha256_hex, await self._matches(sha256_hex))

    # ---- queries

    async def _stored_facts(self, registry: str) -> StoredFacts | None:
        try:
            async with self._sessions() as session:
                row = (
                    await session.execute(
                        select(
                            Message.id,
                            Message.token,
                            Message.status,
                            Message.revoked_at,
                            Message.revoked_reason,
                            Agency.code,
                            Agency.name_en,
                            Agency.name_ar,
                            Employee.name_en,
                            Employee.name_ar,
                        )
                        .join(Agency, Agency.id == Message.agency_id)
                        .join(Employee, Employee.id == Message.sender_employee_id)
                        .where(Message.registry_number == registry)
                    )
                ).first()
                if row is None:
                    return None
                documents = (
                    await session.execute(
                        select(MessageDocument.name, MessageDocument.sha256)
                        .where(MessageDocument.message_id == row[0])
                        .order_by(MessageDocument.position)
                    )
                ).all()
        except DATABASE_ERRORS as exc:
            raise _unavailable("by_token", exc) from None
        return StoredFacts(
            token=row[1],
            status=row[2],
            revoked_at=row[3],
            revoked_reason=row[4],
            agency=AgencyFacts(code=row[5], name_en=row[6], name_ar=row[7]),
            sender=SenderFacts(name_en=row[8], name_ar=row[9]),
            documents=tuple(DocumentFacts(name, sha.lower()) for name, sha in documents),
        )

    async def _matches(self, sha256_hex: str) -> list[DocumentMatch]:
        try:
            async with self._sessions() as session:
                rows = (
                    await session.execute(
                        select(
                            Message.id,
                            Message.registry_number,
                            Message.status,
                            Agency.code,
                            Agency.name_en,
                            Agency.name_ar,
                        )
                        .distinct()
                        .join(MessageDocument, MessageDocument.message_id == Message.id)
                        .join(Agency, Agency.id == Message.agency_id)
                        .where(MessageDocument.sha256 == sha256_hex)
                        .order_by(Message.id)
                        .limit(MAX_DOCUMENT_MATCHES)
                    )
                ).all()
        except DATABASE_ERRORS as exc:
            raise _unavailable("by_document", exc) from None
        return [
            DocumentMatch(
                registry=registry,
                status=status,
                agency=AgencyFacts(code=code, name_en=name_en, name_ar=name_ar),
            )
            for _id, registry, status, code, name_en, name_ar in rows
        ]


def _unavailable(operation: str, exc: BaseException) -> VerificationUnavailable:
    # Only the class name reaches the log: a driver's text can hold query parameters.
    log.warning(
        "verification: database unavailable",
        extra={"operation": operation, "error": type(exc).__name__},
    )
    return VerificationUnavailable()
