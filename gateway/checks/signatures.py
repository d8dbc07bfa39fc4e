"""Signed documents of one submitted message: every document covered by a valid
signature of one of the sender's registered identities, verified over exactly
the signed bytes (OpenPGP, S/MIME and CMS detached, opaque S/MIME, CAdES files).

Owns: finding the documents and the employee codes the good signatures name,
and the refusals of this step (554 5.7.5 for a failed signature, 550 5.7.1 for a
signer who is not the sender or an unsigned document). Must not: do I/O (the
signing material is fetched by the pipeline) or decide anything else.
"""

from __future__ import annotations

import hashlib
import re

from cryptography import x509

from gateway.checks.facts import Inputs
from gateway.mime.analysis import Analysis, EntityAnalysis, analyze_entity
from gateway.mime.transfer import decode_body
from gateway.mime.verdicts import RejectedError, Rejection, Verdict
from gateway.model.message import Document
from gateway.model.replies import reply
from gateway.store.directory import SigningMaterial
from keys.signatures import (
    SignatureResult,
    SignatureStatus,
    verify_cms_attached,
    verify_cms_detached,
    verify_openpgp_detached,
)

OPENPGP_KINDS = frozenset({"pgp-mime", "openpgp-detached"})
CMS_DETACHED_KINDS = frozenset({"smime-signed", "cms-detached"})
OPAQUE_KIND = "smime-opaque"
MAX_OPAQUE_NESTING = 2


def _anchors(material: SigningMaterial) -> list[x509.Certificate]:
    out = []
    for pem in material.ca_pems:
        try:
            out.append(x509.load_pem_x509_certificate(pem))
        except ValueError:
            continue
    return out


def _registered_x509(material: SigningMaterial) -> list[x509.Certificate]:
    out = []
    for data in material.x509_certs:
        try:
            out.append(
                x509.load_pem_x509_certificate(data)
                if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_certificate(data)
            )
        except ValueError:
            continue
    return out


def _verify(kind: str, signed: bytes, signature: bytes, inputs: Inputs) -> SignatureResult:
    if kind in OPENPGP_KINDS:
        return verify_openpgp_detached(
            signed,
            signature,
            inputs.material.openpgp_certs,
            when=inputs.now,
            backend=inputs.openpgp_backend,
        )
    return verify_cms_detached(
        signed,
        signature,
        _anchors(inputs.material),
        when=inputs.now,
        registered=_registered_x509(inputs.material),
    )


def _signer_is_sender(result: SignatureResult, material: SigningMaterial) -> bool:
    fingerprint = (result.signer_fingerprint or "").upper()
    return fingerprint in material.openpgp_fingerprints or fingerprint in material.x509_fingerprints


def signed_documents(
    analysis: Analysis | EntityAnalysis, inputs: Inputs, depth: int = 0, covered: bool = False
) -> tuple[list[Document], set[str]] | Verdict:
    """(documents, employee codes named by the good signatures) or the first refusal.

    `covered`: the entity is the content of a valid opaque signature, so all of
    its documents are signed by it; signatures nested inside must still be valid.
    """
    good: set[int] = set()
    codes: set[str] = set()
    documents: list[Document] = []
    inner_documents: list[Document] = []
    for index, unit in enumerate(analysis.signed_units):
        if unit.kind == OPAQUE_KIND:
            result, content = verify_cms_attached(
                unit.signature_bytes,
                _anchors(inputs.material),
                when=inputs.now,
                registered=_registered_x509(inputs.material),
            )
        else:
            result = _verify(unit.kind, unit.signed_bytes, unit.signature_bytes, inputs)
            content = None
        if result.status is not SignatureStatus.VALID:
            code, enhanced = result.status.reply
            reason = "signature" if code == 554 else "signer"
            return Verdict(reply(code, enhanced, f"Signature refused: {result.reason}"), reason)
        if not _signer_is_sender(result, inputs.material):
            return Verdict(
                reply(550, "5.7.1", "Document signed by someone other than the sender"), "signer"
            )
        good.add(index)
        codes.update(result.employee_codes)
        if content is not None:
            cades = _cades_name(analysis, unit.path)
            if cades is not None:
                # A signed file (`decree.pdf.p7m`, CAdES): the content is the document.
                inner_documents.append(_document(cades, "application/octet-stream", content))
                continue
            if depth >= MAX_OPAQUE_NESTING:
                return Verdict(reply(552, "5.3.4", "Signed data nested too deeply"), "mime")
            inner = analyze_entity(content, inputs.limits)
            if isinstance(inner, Rejection):
                return Verdict(inner.reply, "mime")
            nested = signed_documents(inner, inputs, depth + 1, covered=True)
            if isinstance(nested, Verdict):
                return nested
            inner_documents.extend(nested[0])
            codes.update(nested[1])
    if not covered:
        hidden = _hidden_files(analysis)
        if hidden is not None:
            return hidden
    for part in analysis.documents:
        if not covered and not good.intersection(part.covered_by):
            return Verdict(
                reply(550, "5.7.1", f"Attachment {part.name!r} is not signed by the sender"),
                "unsigned",
            )
        documents.append(_document(part.name, part.content_type, part.data))
    documents.extend(_unique(inner_documents, documents))
    if depth == 0 and not documents:
        return Verdict(reply(550, "5.7.1", "No signed document attached"), "no-document")
    return documents, codes


# Files that mail clients pull out of plain text or HTML and show as attachments:
# uuencode, yEnc, BinHex blocks, and data: URIs in HTML.
_ENCODED_FILE = re.compile(
    rb"(?m)^(?:begin(?:-base64)? [0-7]{3,4} \S|=ybegin |\(This file must be converted with BinHex)"
)
_DATA_URI = re.compile(rb"(?i)(?:src|href|data)\s*=\s*[\"']?\s*data:")


def _hidden_files(analysis: Analysis | EntityAnalysis) -> Verdict | None:
    """Refuse unsigned inline text that carries a file a client would show as one."""
    parts = {part.path: part for part in analysis.root.walk()}
    for text in analysis.inline_texts:
        if text.covered_by:  # inside a signature that was verified above
            continue
        part = parts[text.path]
        try:
            body = decode_body(part.body(analysis.raw), part.transfer_encoding, "text")
        except RejectedError as rejected:
            return Verdict(rejected.rejection.reply, "mime")
        if _ENCODED_FILE.search(body) or (
            part.content_type == "text/html" and _DATA_URI.search(body)
        ):
            return Verdict(
                reply(550, "5.7.1", "Unsigned message text carries an embedded file"), "unsigned"
            )
    return None


def _cades_name(analysis: Analysis | EntityAnalysis, path: tuple[int, ...]) -> str | None:
    """`name.ext` for a `name.ext.p7m` part that is not S/MIME (no smime-type): a signed
    file whose content is the document itself, not a MIME entity (RFC 5652 / CAdES)."""
    for part in analysis.root.walk():
        if part.path == path:
            name = part.filename or ""
            if part.params.get("smime-type") or not name.lower().endswith(".p7m"):
                return None
            return name[:-4] or "document"
    return None


def _document(name: str, content_type: str, data: bytes) -> Document:
    return Document(name, content_type, data, hashlib.sha256(data).hexdigest())


def _unique(new: list[Document], have: list[Document]) -> list[Document]:
    seen = {(d.name, d.sha256) for d in have}
    out = []
    for doc in new:
        if (doc.name, doc.sha256) not in seen:
            seen.add((doc.name, doc.sha256))
            out.append(doc)
    return out
