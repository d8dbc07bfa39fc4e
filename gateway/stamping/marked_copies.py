"""Which copies carry marked PDF documents, and the marked parts of one copy.

Owns: `MarkingPolicy` (per issuing agency and classification; default on for
`confidential` and `secret`), marking one copy's PDF documents
(`marked_documents`), the signed `marking` record of certificate.json
(`marking_record`, `verify_marking_record`) and the MIME parts that carry the
marked files. Must not: change the sender's original (the copy still holds it
untouched as original.eml) nor touch the database or the network.
Failure: a PDF that cannot be marked is carried only inside the original, and
the record names it with the reason (`unmarked`); nothing raises for it.

The record is signed with the gateway's Ed25519 signing key over its canonical
JSON (sorted keys, no spaces) without the `signature` field, under the context
`barid-marking/1\\0`: it binds the original message's SHA-256, the verification
token (which signs the original documents' digests), the copy's recipient and
trace code, and every marked file's digest to the original document's.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.model.message import Document
from gateway.stamping.envelope import base64_lines, delimiter, part_headers
from gateway.stamping.pdf_mark import MARK_FORMAT, NotMarkable, mark_pdf, mark_text, markable
from policies.directory import Clearance

DEFAULT_MARKED = frozenset({Clearance.CONFIDENTIAL, Clearance.SECRET})
_CONTEXT = b"barid-marking/1\x00"


@dataclass(frozen=True)
class MarkingPolicy:
    """Classifications whose PDFs are marked: `default`, or an agency's own set.

    An agency's entry applies to it and to the agencies below it (MOF covers
    MOF-TAX) unless a longer code has its own entry."""

    default: frozenset[Clearance] = DEFAULT_MARKED
    agencies: Mapping[str, frozenset[Clearance]] = field(default_factory=dict)

    def applies(self, agency: str, classification: Clearance) -> bool:
        parts = agency.split("-")
        for n in range(len(parts), 0, -1):
            chosen = self.agencies.get("-".join(parts[:n]))
            if chosen is not None:
                return classification in chosen
        return classification in self.default


def is_pdf(doc: Document) -> bool:
    return doc.content_type.lower() == "application/pdf" or doc.name.lower().endswith(".pdf")


def any_markable(documents: Sequence[Document]) -> bool:
    """Whether at least one of `documents` is a PDF that can be marked."""
    return any(is_pdf(doc) and markable(doc.data) for doc in documents)


@dataclass(frozen=True)
class MarkedDocument:
    name: str
    data: bytes
    original_sha256: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def marked_documents(
    documents: Sequence[Document], registry: str, trace: str, recipient: str, verify_url: str
) -> tuple[list[MarkedDocument], list[dict[str, str]]]:
    """(marked copies of the PDFs, [{name, sha256, reason}] of PDFs left unmarked)."""
    marked: list[MarkedDocument] = []
    unmarked: list[dict[str, str]] = []
    for doc in documents:
        if not is_pdf(doc):
            continue
        try:
            data = mark_pdf(doc.data, registry, trace, recipient, verify_url)
        except NotMarkable as exc:
            unmarked.append({"name": doc.name, "sha256": doc.sha256, "reason": str(exc)})
            continue
        marked.append(MarkedDocument(doc.name, data, doc.sha256))
    return marked, unmarked


def _signed_bytes(record: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "signature"}
    return _CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def marking_record(
    certificate: Mapping[str, Any],
    marked: Sequence[MarkedDocument],
    unmarked: Sequence[dict[str, str]],
    signing_key: ed25519.Ed25519PrivateKey,
) -> dict[str, Any]:
    """certificate.json's `marking` of one copy (which carries `recipient`, `trace_code`)."""
    record: dict[str, Any] = {
        "format": MARK_FORMAT,
        "mark": mark_text(certificate["registry"], certificate["trace_code"]),
        "recipient": certificate["recipient"],
        "trace_code": certificate["trace_code"],
        "original_sha256": certificate["original"]["sha256"],
        "token": certificate["token"],
        "documents": [
            {
                "name": m.name,
                "original_sha256": m.original_sha256,
                "marked_sha256": m.sha256,
                "marked_size": len(m.data),
            }
            for m in marked
        ],
        "unmarked": list(unmarked),
        "key_id": certificate["key_id"],
    }
    signature = signing_key.sign(_signed_bytes(record))
    record["signature"] = base64.b64encode(signature).decode("ascii")
    return record


def verify_marking_record(record: Mapping[str, Any], public_key: ed25519.Ed25519PublicKey) -> bool:
    """Whether `record` is signed by `public_key` and unaltered."""
    try:
        signature = base64.b64decode(str(record["signature"]), validate=True)
        public_key.verify(signature, _signed_bytes(record))
    except (KeyError, ValueError, InvalidSignature):
        return False
    return True


def marked_parts(boundary: str, marked: Sequence[MarkedDocument]) -> bytes:
    """The marked files as attachments of the copy's outer multipart/mixed."""
    parts = []
    for n, doc in enumerate(marked, start=1):
        name = doc.name if doc.name.isascii() and doc.name.isprintable() else f"document-{n}.pdf"
        name = name.replace('"', "'").replace("\\", "_")
        parts.append(
            delimiter(boundary)
            + part_headers(
                ("Content-Type", f'application/pdf; name="{name}"'),
                ("Content-Disposition", f'attachment; filename="{name}"'),
                ("Content-Description", "Marked reading copy"),
                ("Content-Transfer-Encoding", "base64"),
            )
            + base64_lines(doc.data)
        )
    return b"".join(parts)


__all__ = [
    "DEFAULT_MARKED",
    "MarkedDocument",
    "MarkingPolicy",
    "any_markable",
    "is_pdf",
    "marked_documents",
    "marked_parts",
    "marking_record",
    "verify_marking_record",
]
