"""Where the signatures are, the exact bytes each one is over, and what it covers.

Owns: signed units (RFC 3156, RFC 8551, detached `.sig`/`.asc`/`.p7s`), documents
with digests, and coverage: a multipart/signed covers exactly its first part's
subtree. Must not: verify anything; the verifier checks the bytes given here.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Literal

from gateway.mime.structure import Part, PartPath, format_path
from gateway.mime.transfer import decode_body
from gateway.mime.verdicts import RejectedError, malformed

SignedKind = Literal["pgp-mime", "smime-signed", "smime-opaque", "openpgp-detached", "cms-detached"]

_PGP_SIGNATURE = "application/pgp-signature"
_CMS_SIGNATURES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
_CMS_MIME = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_DETACHED_SUFFIXES: dict[str, SignedKind] = {
    ".sig": "openpgp-detached",
    ".asc": "openpgp-detached",
    ".p7s": "cms-detached",
}
_BODY_TYPES = frozenset({"text/plain", "text/html"})


@dataclass(frozen=True, slots=True)
class SignedUnit:
    """One signature and the exact bytes it is over.

    pgp-mime / smime-signed: `path` is the multipart/signed part; `signed_bytes`
        is raw[signed_range], its first body part with headers, up to but not
        including the CRLF before the next delimiter (RFC 1847 §2.1).
    smime-opaque: `path` is the application/pkcs7-mime part; `signature_bytes`
        is the DER signed-data and `signed_bytes` is empty: the content is inside
        the DER; once extracted it is a MIME entity for `analyze_entity`.
    openpgp-detached / cms-detached: `path` is the document's part;
        `signed_bytes` is its decoded content.
    `covers` indexes `documents` of the same analysis.
    """

    kind: SignedKind
    path: PartPath
    signature_path: PartPath
    signed_bytes: bytes
    signature_bytes: bytes
    covers: tuple[int, ...]
    signed_range: tuple[int, int] | None = None
    micalg: str | None = None


@dataclass(frozen=True, slots=True)
class DocumentPart:
    """An attachment: decoded content, its SHA-256 and the units that cover it."""

    path: PartPath
    name: str
    content_type: str
    data: bytes
    sha256: str  # hex of `data`
    covered_by: tuple[int, ...]  # indices into `signed_units`


@dataclass(frozen=True, slots=True)
class InlineText:
    """A text/plain or text/html body without a file name (not a document)."""

    path: PartPath
    content_type: str
    covered_by: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Found:
    kind: SignedKind
    path: PartPath
    signature_path: PartPath
    scope: PartPath  # everything at or under this path is covered (detached: the file)
    signed_bytes: bytes
    signature_bytes: bytes
    signed_range: tuple[int, int] | None
    micalg: str | None


class _Locator:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.found: list[_Found] = []
        self.not_documents: set[PartPath] = set()

    def decoded(self, part: Part) -> bytes:
        return decode_body(part.body(self.raw), part.transfer_encoding, format_path(part.path))

    def cms(self, part: Part) -> bytes:
        der = self.decoded(part)
        if not der.startswith(b"\x30"):  # a DER SEQUENCE (RFC 5652 ContentInfo)
            raise RejectedError(
                malformed(f"CMS signature is not DER in part {format_path(part.path)}")
            )
        return der

    def visit(self, part: Part) -> None:
        if part.content_type == "multipart/signed":
            self.multipart_signed(part)
            return
        if part.is_multipart:
            self.detached(part)
            for child in part.children:
                self.visit(child)
            return
        if part.content_type in _CMS_MIME and _is_signed_data(part):
            self.not_documents.add(part.path)
            self.found.append(
                _Found("smime-opaque", part.path, part.path, part.path, b"", self.cms(part),
                       None, None)
            )  # fmt: skip

    def multipart_signed(self, part: Part) -> None:
        where = format_path(part.path)
        if len(part.children) != 2:  # RFC 1847 §2.1: exactly two body parts
            raise RejectedError(malformed(f"multipart/signed without two parts in part {where}"))
        first, second = part.children
        protocol = part.params.get("protocol", "").strip().lower()
        if not protocol:
            raise RejectedError(malformed(f"multipart/signed without protocol in part {where}"))
        kind: SignedKind | None = None
        if protocol == _PGP_SIGNATURE and second.content_type == _PGP_SIGNATURE:
            kind = "pgp-mime"
            signature = self.decoded(second)
        elif protocol in _CMS_SIGNATURES and second.content_type in _CMS_SIGNATURES:
            kind = "smime-signed"
            signature = self.cms(second)
        elif protocol == _PGP_SIGNATURE or protocol in _CMS_SIGNATURES:
            raise RejectedError(
                malformed(f"signature part does not match protocol in part {where}")
            )
        if kind is not None:
            # Only a signature that a unit uses is not a document.
            self.not_documents.add(second.path)
            self.found.append(
                _Found(kind, part.path, second.path, first.path, first.entity(self.raw),
                       signature, (first.start, first.end), part.params.get("micalg"))
            )  # fmt: skip
        else:
            # An unknown protocol signs nothing we can check: both parts stay
            # uncovered, and their documents must be signed some other way.
            self.visit(second)
        self.visit(first)

    def detached(self, parent: Part) -> None:
        """`name.ext` + `name.ext.sig|.asc|.p7s` among one parent's leaf children."""
        leaves = [c for c in parent.children if not c.is_multipart and c.filename]
        for signature in leaves:
            name = signature.filename or ""
            kind = _DETACHED_SUFFIXES.get(name[-4:].lower())
            if kind is None:
                continue
            targets = [c for c in leaves if c.filename == name[:-4] and c is not signature]
            if not targets:
                continue
            if len(targets) > 1:
                raise RejectedError(malformed(f"two attachments named {_ascii(name[:-4])!r}"))
            target = targets[0]
            self.not_documents.add(signature.path)
            signature_bytes = (
                self.cms(signature) if kind == "cms-detached" else self.decoded(signature)
            )
            self.found.append(
                _Found(kind, target.path, signature.path, target.path, self.decoded(target),
                       signature_bytes, None, None)
            )  # fmt: skip


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _is_signed_data(part: Part) -> bool:
    smime_type = part.params.get("smime-type", "").lower()
    if smime_type:
        return smime_type == "signed-data"
    return (part.filename or "").lower().endswith(".p7m")


def _covering(found: list[_Found], path: PartPath) -> tuple[int, ...]:
    return tuple(
        i for i, unit in enumerate(found)
        if unit.kind != "smime-opaque" and path[: len(unit.scope)] == unit.scope
        and (unit.kind in ("pgp-mime", "smime-signed") or path == unit.scope)
    )  # fmt: skip


def _document_name(part: Part) -> str:
    name = part.filename or f"part-{format_path(part.path)}"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        where = format_path(part.path)
        raise RejectedError(malformed(f"control character in file name in part {where}"))
    return name


def locate(
    raw: bytes, root: Part
) -> tuple[tuple[SignedUnit, ...], tuple[DocumentPart, ...], tuple[InlineText, ...]]:
    """Signed units, documents and inline bodies of the tree `root` over `raw`."""
    locator = _Locator(raw)
    locator.visit(root)
    found = locator.found
    documents: list[DocumentPart] = []
    texts: list[InlineText] = []
    data_of = {unit.scope: unit.signed_bytes for unit in found if unit.kind.endswith("detached")}
    for part in root.walk():
        # Signature parts used by a signed unit are in `not_documents`; any other
        # part, whatever its Content-Type claims, is content that needs a signature.
        if part.is_multipart or part.path in locator.not_documents:
            continue
        covered = _covering(found, part.path)
        if (
            part.content_type in _BODY_TYPES
            and not part.filename
            and part.disposition != "attachment"
        ):
            texts.append(InlineText(part.path, part.content_type, covered))
            continue
        data = data_of.get(part.path)
        if data is None:
            data = locator.decoded(part)
        documents.append(
            DocumentPart(part.path, _document_name(part), part.content_type, data,
                         hashlib.sha256(data).hexdigest(), covered)
        )  # fmt: skip
    units = tuple(
        SignedUnit(
            kind=unit.kind,
            path=unit.path,
            signature_path=unit.signature_path,
            signed_bytes=unit.signed_bytes,
            signature_bytes=unit.signature_bytes,
            covers=tuple(j for j, doc in enumerate(documents) if i in doc.covered_by),
            signed_range=unit.signed_range,
            micalg=unit.micalg,
        )
        for i, unit in enumerate(found)
    )
    return units, tuple(documents), tuple(texts)
