"""End-of-data checks of one submitted message: a verdict, never a side effect.

Owns: the order and meaning of the message checks of docs/CONTRACT.md §4-5 — MIME
limits and structure (gateway.mime), From/Sender, signed documents (every
document covered by a valid signature of one of the sender's registered
identities, verified over exactly the signed bytes), the employee code,
classification against every clearance, and the policy with full facts.
Must not: do I/O (the pipeline fetches what is needed first and runs this in a
worker thread) or word replies outside gateway.smtp.replies conventions.

The first refusal wins, in this order: structure (550 5.6.0 / 552 5.3.4) ->
headers (550 5.7.1) -> signatures (554 5.7.5 for a failed signature, 550 5.7.1
for a signer who is not the sender) -> documents (550 5.7.1) -> employee code
(550 5.7.1) -> classification (550 5.7.1 naming the recipients) -> policy
(550 5.7.1 naming the rule).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from gateway.mime.analysis import Analysis, EntityAnalysis, analyze, analyze_entity
from gateway.mime.coverage import content_parts
from gateway.mime.limits import MimeLimits
from gateway.mime.transfer import decode_body
from gateway.mime.verdicts import RejectedError, Rejection
from gateway.model.message import Document, Recipient, Submission
from gateway.smtp.refusals import is_rate_rule
from gateway.smtp.replies import RATE_LIMITED, reply
from gateway.store.directory import SigningMaterial
from keys.signatures import (
    OpenPgpBackend,
    SignatureResult,
    SignatureStatus,
    verify_cms_attached,
    verify_cms_detached,
    verify_openpgp_detached,
)
from policies.codes import CodeError, EmployeeCode
from policies.decision import Attachment, MessageFacts
from policies.directory import AgencyRecord, Clearance, DirectorySnapshot, EmployeeRecord
from policies.engine import Policy

OPENPGP_KINDS = frozenset({"pgp-mime", "openpgp-detached"})
CMS_DETACHED_KINDS = frozenset({"smime-signed", "cms-detached"})
OPAQUE_KIND = "smime-opaque"
MAX_OPAQUE_NESTING = 2


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused message: the reply line and a bounded reason for metrics and audit."""

    reply: str
    reason: str  # a short, bounded label: mime, from, signature, signer, unsigned, ...
    rule_id: str = ""


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the pipeline gathers before the checks run (all values, no I/O)."""

    raw: bytes
    sender: EmployeeRecord
    agency: AgencyRecord
    material: SigningMaterial
    recipients: tuple[str, ...]
    snapshot: DirectorySnapshot
    policy: Policy
    federation: Mapping[str, Sequence[str]]
    limits: MimeLimits
    now: dt.datetime
    sent_last_hour: int
    client_address: str = ""
    openpgp_backend: OpenPgpBackend = "sequoia"
    mailservers: Mapping[str, str] = field(default_factory=dict)  # agency code -> server


@dataclass
class _Documents:
    """Documents found, each with the indices of the good signatures covering it."""

    items: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)


def check_message(inputs: Inputs) -> Submission | Refusal:
    analysis = analyze(inputs.raw, inputs.limits)
    if isinstance(analysis, Rejection):
        return Refusal(analysis.reply, "mime")
    refusal = _headers(analysis, inputs.sender)
    if refusal is not None:
        return refusal
    found = _signed_documents(analysis, inputs)
    if isinstance(found, Refusal):
        return found
    documents, codes = found
    refusal = _employee_code(analysis.employee_code, codes, inputs.sender)
    if refusal is not None:
        return refusal
    refusal = _classification(analysis.classification, inputs)
    if refusal is not None:
        return refusal
    facts = MessageFacts(
        classification=analysis.classification,
        attachments=tuple(Attachment(d.name, d.content_type) for d in documents),
        size=len(inputs.raw),
        recipient_count=len(inputs.recipients),
        sender_messages_last_hour=inputs.sent_last_hour,
    )
    for recipient in inputs.recipients:
        decision = inputs.policy.decide(inputs.sender.address, recipient, facts)
        if not decision.allowed:
            if is_rate_rule(inputs.policy, decision.rule_id):
                return Refusal(RATE_LIMITED, "rate", decision.rule_id)
            text = f"{recipient}: {decision.reason.en} (policy {decision.rule_id})"
            return Refusal(reply(550, "5.7.1", text), "policy", decision.rule_id)
    return Submission(
        sender_address=inputs.sender.address,
        sender_code=inputs.sender.code,
        sender_agency=inputs.agency.code,
        sender_name_en=inputs.sender.name_en,
        sender_name_ar=inputs.sender.name_ar,
        agency_name_en=inputs.agency.name_en,
        agency_name_ar=inputs.agency.name_ar,
        classification=analysis.classification,
        subject=analysis.subject,
        raw=inputs.raw,
        documents=tuple(documents),
        recipients=tuple(_recipient(r, inputs) for r in inputs.recipients),
        received_at=inputs.now,
        client_address=inputs.client_address,
        message_id=analysis.message_id or "",
        parts=content_parts(analysis.signed_units, analysis.documents, analysis.inline_texts),
    )


def _headers(analysis: Analysis, sender: EmployeeRecord) -> Refusal | None:
    if analysis.from_address != sender.address:
        return Refusal(
            reply(550, "5.7.1", "From header is not the authenticated sender's address"), "from"
        )
    if analysis.sender_address is not None and analysis.sender_address != sender.address:
        return Refusal(reply(550, "5.7.1", "Sender header names another address"), "sender")
    if not _display_name_ok(analysis.from_display_name, sender):
        return Refusal(
            reply(550, "5.7.1", "From display name is not the sender's registered name"), "from"
        )
    return None


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _display_name_ok(display: str, sender: EmployeeRecord) -> bool:
    """No mismatched display name (docs/CONTRACT.md §4): empty, or one that contains the
    sender's registered English or Arabic name ("Dr. Karim Abbas" is fine,
    "Minister of Health" is not)."""
    shown = _fold(display.strip().strip('"'))
    if not shown:
        return True
    return any(name and name in shown for name in (_fold(sender.name_en), _fold(sender.name_ar)))


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


def _signed_documents(
    analysis: Analysis | EntityAnalysis, inputs: Inputs, depth: int = 0, covered: bool = False
) -> tuple[list[Document], set[str]] | Refusal:
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
            return Refusal(reply(code, enhanced, f"Signature refused: {result.reason}"), reason)
        if not _signer_is_sender(result, inputs.material):
            return Refusal(
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
                return Refusal(reply(552, "5.3.4", "Signed data nested too deeply"), "mime")
            inner = analyze_entity(content, inputs.limits)
            if isinstance(inner, Rejection):
                return Refusal(inner.reply, "mime")
            nested = _signed_documents(inner, inputs, depth + 1, covered=True)
            if isinstance(nested, Refusal):
                return nested
            inner_documents.extend(nested[0])
            codes.update(nested[1])
    if not covered:
        hidden = _hidden_files(analysis)
        if hidden is not None:
            return hidden
    for part in analysis.documents:
        if not covered and not good.intersection(part.covered_by):
            return Refusal(
                reply(550, "5.7.1", f"Attachment {part.name!r} is not signed by the sender"),
                "unsigned",
            )
        documents.append(_document(part.name, part.content_type, part.data))
    documents.extend(_unique(inner_documents, documents))
    if depth == 0 and not documents:
        return Refusal(reply(550, "5.7.1", "No signed document attached"), "no-document")
    return documents, codes


# Files that mail clients pull out of plain text or HTML and show as attachments:
# uuencode, yEnc, BinHex blocks, and data: URIs in HTML.
_ENCODED_FILE = re.compile(
    rb"(?m)^(?:begin(?:-base64)? [0-7]{3,4} \S|=ybegin |\(This file must be converted with BinHex)"
)
_DATA_URI = re.compile(rb"(?i)(?:src|href|data)\s*=\s*[\"']?\s*data:")


def _hidden_files(analysis: Analysis | EntityAnalysis) -> Refusal | None:
    """Refuse unsigned inline text that carries a file a client would show as one."""
    parts = {part.path: part for part in analysis.root.walk()}
    for text in analysis.inline_texts:
        if text.covered_by:  # inside a signature that was verified above
            continue
        part = parts[text.path]
        try:
            body = decode_body(part.body(analysis.raw), part.transfer_encoding, "text")
        except RejectedError as rejected:
            return Refusal(rejected.rejection.reply, "mime")
        if _ENCODED_FILE.search(body) or (
            part.content_type == "text/html" and _DATA_URI.search(body)
        ):
            return Refusal(
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


def _employee_code(header: str | None, codes: set[str], sender: EmployeeRecord) -> Refusal | None:
    own = sender.code.upper()
    if header is not None:
        try:
            given = str(EmployeeCode.parse(header))
        except CodeError:
            return Refusal(
                reply(550, "5.7.1", "Barid-Employee-Code is not a valid employee code"), "code"
            )
        if given != own:
            return Refusal(
                reply(550, "5.7.1", "Barid-Employee-Code is not the sender's employee code"), "code"
            )
        return None
    if own in codes:
        return None
    if codes:
        return Refusal(reply(550, "5.7.1", "The signature names another employee code"), "code")
    return Refusal(reply(550, "5.7.1", "Employee code missing (Barid-Employee-Code)"), "code")


def _classification(level: Clearance, inputs: Inputs) -> Refusal | None:
    if level > inputs.sender.clearance:
        return Refusal(
            reply(550, "5.7.1", f"Classification {level.label} exceeds your clearance"),
            "classification",
            "clearance",
        )
    over = []
    for address in inputs.recipients:
        person = inputs.snapshot.employee(address)
        if person is not None and level > person.clearance:
            over.append(address)
    if over:
        names = ", ".join(over[:10]) + (" ..." if len(over) > 10 else "")
        return Refusal(
            reply(550, "5.7.1", f"Classification {level.label} exceeds the clearance of: {names}"),
            "classification",
            "clearance",
        )
    return None


def _recipient(address: str, inputs: Inputs) -> Recipient:
    person = inputs.snapshot.employee(address)
    if person is not None:
        return Recipient(
            address, True, person.code, mailserver=inputs.mailservers.get(person.agency)
        )
    domain = address.rsplit("@", 1)[-1]
    peer = next((name for name, ds in inputs.federation.items() if domain in ds), None)
    return Recipient(address, False, None, peer)
