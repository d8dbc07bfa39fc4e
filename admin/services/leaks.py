"""Leak trace: from a leaked trace code, copy (.eml), document or photo of a printed
page to the copies it came from, with each copy's chain of custody.

Owns: `trace_leak` (taking the `Actor` first; readers of the access trail only:
system-admin, security-auditor, and agency-admin inside its subtree). A copy
outside a scoped actor's subtree is left out exactly as if it did not exist, so
"no copy matches" cannot be told apart from "not yours". Must not: guess (two
copies matching a forgiving reading is a refusal, not a choice), write, or
show message content. Failure: everything that matches nothing, or matches
ambiguously, is a `NotFound` whose one line says what was tried.

Chain of custody per copy: accepted (time, sender, client address), delivery
(target, state, time), every body fetch from the access trail (time, protocol,
client address) and forwards, which Barid does not record yet (always empty,
said so in `forwards_note`). A marked PDF (gateway.stamping.pdf_mark: the
reading copy a recipient got of a confidential or secret message, also after a
re-save) names its one copy by its embedded mark; any other document names the
message(s) and every copy that held it, never one recipient (`recipient_named`
is false and `note` says why). A photo or scan of a printed marked page names
its one copy by the per-copy QR code in the footer (admin.services.leak_photo)
or, when no QR code in it names a copy, by the trace code printed in the footer,
read by OCR (admin.services.leak_ocr) and matched with the forgiving reading of a
typed code; the registry number read with it narrows the match, and more than
one matching copy is a refusal as for a typed code.
"""

from __future__ import annotations

import hashlib

from admin.context import App
from admin.services.actor import Actor, Area, in_scope, require
from admin.services.errors import InvalidInput, NotFound, Unavailable
from admin.services.leak_audit import audited, record_refused_input
from admin.services.leak_input import LeakInput, code_candidates, read_input
from admin.services.leak_ocr import printed_codes
from admin.services.leak_photo import copies_in_photo
from admin.services.model import Frozen
from admin.services.scope import home_path, tree
from gateway.stamping.pdf_mark import read_mark
from gateway.store.access_trail import access_entries
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher, BlobError
from gateway.store.directory.scope import AgencyTree
from gateway.store.errors import DATABASE_ERRORS, StoreUnavailable, UnknownMessage
from gateway.store.leak_lookup import (
    CopyRef,
    copies_by_trace,
    copies_of,
    documents_by_sha256,
    origin_of,
)
from gateway.store.readers import MessageReader
from gateway.store.tracking import track_message
from keys.gateway_keys import derive_key
from policies.directory import Clearance

FORWARDS_NOTE = "Barid does not record forwards of a copy yet"
DOCUMENT_NOTE = (
    "the document carries no per-copy mark, so it cannot name the recipient whose copy"
    " leaked: every copy that held it is listed"
)


class Access(Frozen):
    at: str
    employee: str
    protocol: str
    client: str
    mailbox: str


class CopyCustody(Frozen):
    registry: str
    recipient: str
    trace_code: str
    target: str
    state: str
    delivered_at: str | None
    accesses: list[Access]
    forwards: list[str]
    forwards_note: str = FORWARDS_NOTE


class MessageOrigin(Frozen):
    registry: str
    agency: str
    classification: str
    sender: str
    accepted_at: str
    accepted_from: str
    documents: list[str]  # the matched document's names in it (document traces only)


class LeakTrace(Frozen):
    kind: str  # code | eml | document | photo
    input: str
    input_sha256: str
    matched_by: str
    verified: str | None  # how an .eml was shown to be the stored copy
    recipient_named: bool
    note: str | None
    messages: list[MessageOrigin]
    copies: list[CopyCustody]


def _no_match(tried: str) -> NotFound:
    return NotFound(f"no copy matches: {tried}")


async def _scoped(actor: Actor, agencies: AgencyTree, refs: list[CopyRef]) -> list[CopyRef]:
    return [ref for ref in refs if in_scope(actor, agencies.path(ref.agency))]


async def _custody(app: App, ref: CopyRef) -> CopyCustody:
    async with app.sessions() as session:
        facts = await track_message(session, ref.registry)
        entries = await access_entries(session, registry=ref.registry, trace=ref.trace_code)
    copy = next((c for c in facts.copies if c.recipient == ref.recipient), None) if facts else None
    return CopyCustody(
        registry=ref.registry,
        recipient=ref.recipient,
        trace_code=ref.trace_code,
        target=copy.target if copy else "unknown",
        state=copy.state if copy else "unknown",
        delivered_at=copy.delivered_at if copy else None,
        accesses=[
            Access(
                at=e.at,
                employee=e.employee,
                protocol=e.protocol,
                client=e.client,
                mailbox=e.mailbox,
            )
            for e in entries
        ],
        forwards=[],
    )


async def _origin(app: App, message_id: int, documents: list[str]) -> MessageOrigin:
    async with app.sessions() as session:
        origin = await origin_of(session, message_id)
    if origin is None:  # removed since the lookup: as never there
        raise _no_match("the message is no longer stored")
    return MessageOrigin(
        registry=origin.registry,
        agency=origin.agency,
        classification=Clearance(origin.classification).label,
        sender=origin.sender,
        accepted_at=origin.accepted_at,
        accepted_from=origin.client_address,
        documents=documents,
    )


async def _copies_for_codes(
    actor: Actor, app: App, agencies: AgencyTree, codes: tuple[str, ...], tried: str
) -> CopyRef:
    async with app.sessions() as session:
        refs = await _scoped(actor, agencies, await copies_by_trace(session, codes))
    if not refs:
        raise _no_match(tried)
    if len(refs) > 1:
        listed = ", ".join(f"{r.registry} {r.trace_code}" for r in refs)
        raise NotFound(
            f"no copy matches unambiguously: {tried} could be any of {len(refs)} copies"
            f" ({listed}); check the code on the printout"
        )
    return refs[0]


async def _by_code(actor: Actor, app: App, agencies: AgencyTree, given: LeakInput) -> LeakTrace:
    shown = given.text.strip()
    if not given.codes:
        raise _no_match(f"{shown!r} is not a trace code (10 characters, XXXXX-XXXXX) nor a file")
    tried = f"trace code {shown!r} read {len(given.codes)} way(s), case and confusables forgiven"
    ref = await _copies_for_codes(actor, app, agencies, given.codes, tried)
    how = "exactly" if len(given.codes) == 1 else f"one of {len(given.codes)} readings"
    return await _one_copy(app, given, ref, f"trace code {ref.trace_code} ({how})", None)


async def _one_copy(
    app: App, given: LeakInput, ref: CopyRef, matched_by: str, verified: str | None
) -> LeakTrace:
    return LeakTrace(
        kind=given.kind,
        input=given.text,
        input_sha256=given.sha256,
        matched_by=matched_by,
        verified=verified,
        recipient_named=True,
        note=None,
        messages=[await _origin(app, ref.message_id, [])],
        copies=[await _custody(app, ref)],
    )


def _sameness(leaked: bytes, stored: bytes) -> str | None:
    """How the leaked bytes are the stored copy, or None if they are not."""
    if leaked == stored:
        return f"byte-identical to the stored copy (SHA-256 {hashlib.sha256(stored).hexdigest()})"
    lf_leaked, lf_stored = leaked.replace(b"\r\n", b"\n"), stored.replace(b"\r\n", b"\n")
    if lf_leaked == lf_stored:
        return "identical to the stored copy apart from line endings"
    if lf_leaked.endswith(lf_stored):
        added = lf_leaked[: -len(lf_stored)]
        lines = added.rstrip(b"\n").split(b"\n")
        if added.endswith(b"\n") and all(
            line[:1] in (b" ", b"\t") or (b":" in line and b" " not in line.split(b":")[0])
            for line in lines
        ):
            return f"the stored copy with {len(lines)} header line(s) added in front in transit"
    return None


async def _stored_copy(app: App, copy_id: int) -> bytes:
    cipher = BlobCipher(derive_key(app.keys.master_key, BLOB_KEK_PURPOSE), app.blob_stores)
    reader = MessageReader(app.sessions, cipher)
    try:
        return await reader.load_copy(copy_id)
    except (UnknownMessage, BlobError):
        raise _no_match("the stored copy cannot be read back") from None
    except StoreUnavailable as exc:
        raise Unavailable(str(exc)) from None


async def _by_eml(actor: Actor, app: App, agencies: AgencyTree, given: LeakInput) -> LeakTrace:
    if not given.codes:
        if await _document_refs(actor, app, agencies, given):
            return await _by_document(actor, app, agencies, given)
        raise _no_match(
            f"{given.text}: no Barid-Trace header and no trace code in its text parts,"
            f" and its SHA-256 is no stored document's"
        )
    refs: list[CopyRef] = []
    for code in given.codes:
        async with app.sessions() as session:
            refs += await _scoped(actor, agencies, await copies_by_trace(session, (code,)))
    tried = f"{given.text}: trace code {', '.join(given.codes)} found"
    if not refs:
        raise _no_match(f"{tried}, but no stored copy has it")
    for ref in refs:
        verified = _sameness(given.data, await _stored_copy(app, ref.copy_id))
        if verified is not None:
            return await _one_copy(app, given, ref, f"trace code {ref.trace_code} in the copy",
                                   verified)  # fmt: skip
    raise _no_match(
        f"{tried}, but the file is not that stored copy (compared its bytes, its lines"
        " and its body below any added headers): not a Barid copy, or altered"
    )


async def _document_refs(
    actor: Actor, app: App, agencies: AgencyTree, given: LeakInput
) -> list[tuple[int, list[str]]]:
    """(message id, the document's names in it) for every in-scope message holding it."""
    async with app.sessions() as session:
        docs = await documents_by_sha256(session, given.sha256)
    held: dict[int, list[str]] = {}
    for doc in docs:
        if in_scope(actor, agencies.path(doc.agency)):
            held.setdefault(doc.message_id, []).append(doc.name)
    return list(held.items())


async def _by_mark(
    actor: Actor, app: App, agencies: AgencyTree, given: LeakInput, mark: tuple[str, str]
) -> LeakTrace:
    registry, code = mark
    async with app.sessions() as session:
        refs = await _scoped(actor, agencies, await copies_by_trace(session, (code,)))
    refs = [ref for ref in refs if ref.registry == registry]
    if len(refs) != 1:
        raise _no_match(
            f"{given.text}: its per-copy mark names {registry} {code}, and no stored copy is that"
        )
    matched_by = f"per-copy mark in the PDF: {registry} trace code {code}"
    return await _one_copy(app, given, refs[0], matched_by, None)


async def _by_document(actor: Actor, app: App, agencies: AgencyTree, given: LeakInput) -> LeakTrace:
    mark = read_mark(given.data)
    if mark is not None:
        return await _by_mark(actor, app, agencies, given, mark)
    held = await _document_refs(actor, app, agencies, given)
    if not held:
        raise _no_match(f"{given.text}: its SHA-256 {given.sha256} is no stored document's")
    messages = [await _origin(app, message_id, names) for message_id, names in held]
    copies: list[CopyCustody] = []
    for message_id, _names in held:
        async with app.sessions() as session:
            refs = await copies_of(session, message_id)
        copies += [await _custody(app, ref) for ref in refs]
    return LeakTrace(
        kind=given.kind,
        input=given.text,
        input_sha256=given.sha256,
        matched_by=f"document SHA-256 {given.sha256} in {len(messages)} message(s)",
        verified=None,
        recipient_named=False,
        note=DOCUMENT_NOTE,
        messages=messages,
        copies=copies,
    )


async def _by_printed_code(
    actor: Actor, app: App, agencies: AgencyTree, given: LeakInput, tried: list[str]
) -> LeakTrace:
    """No QR code names a copy: the trace code printed in the footer, read by OCR."""
    printed = printed_codes(given.data)
    tried = tried + printed.tried
    refs: dict[int, CopyRef] = {}
    for code in printed.codes:
        async with app.sessions() as session:
            found = await copies_by_trace(session, code_candidates(code))
        refs.update((ref.copy_id, ref) for ref in await _scoped(actor, agencies, found))
    named = [ref for ref in refs.values() if ref.registry in printed.registries]
    matches = named or list(refs.values())
    if len(matches) != 1:
        held = {0: "no stored copy has it", 1: ""}.get(len(matches), "more than one copy matches")
        held = f", and {held}" if printed.codes else ""
        raise _no_match(f"{given.text}: {'; '.join(tried)}{held}")
    ref = matches[0]
    also = " and its registry number" if named else ""
    matched_by = (f"trace code printed in the photo, read by OCR{also}: {ref.registry}"
                  f" trace code {ref.trace_code}")  # fmt: skip
    return await _one_copy(app, given, ref, matched_by, None)


async def _by_photo(actor: Actor, app: App, agencies: AgencyTree, given: LeakInput) -> LeakTrace:
    found = copies_in_photo(given.data, app.settings.http.public_url, app.keys.verification_keys)
    refs: list[CopyRef] = []
    for registry, code in found.named:
        async with app.sessions() as session:
            matches = await _scoped(actor, agencies, await copies_by_trace(session, (code,)))
        refs += [ref for ref in matches if ref.registry == registry]
    tried = [f"the per-copy QR code names {r} trace code {c}" for r, c in found.named]
    tried += found.tried
    if not found.named and not found.unreadable:
        return await _by_printed_code(actor, app, agencies, given, tried)
    if len(refs) != 1:
        held = f", and {'no stored copy is that' if not refs else 'more than one copy matches'}"
        raise _no_match(f"{given.text}: {'; '.join(tried)}{held if found.named else ''}")
    matched_by = (
        f"per-copy QR code in the photo: {refs[0].registry} trace code {refs[0].trace_code}"
    )
    return await _one_copy(app, given, refs[0], matched_by, None)


async def _dispatch(actor: Actor, app: App, given: LeakInput) -> LeakTrace:
    try:
        agencies = await tree(app)
        require(actor, Area.ACCESS_TRAIL, write=False, agency_path=home_path(actor, agencies))
        if given.kind == "code":
            return await _by_code(actor, app, agencies, given)
        if given.kind == "eml":
            return await _by_eml(actor, app, agencies, given)
        if given.kind == "photo":
            return await _by_photo(actor, app, agencies, given)
        return await _by_document(actor, app, agencies, given)
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None


async def trace_leak(actor: Actor, app: App, value: str) -> LeakTrace:
    """Which copy `value` (a typed trace code, or a path to a leaked .eml, document or
    photo) came from, and its chain of custody. NotFound ("no copy matches: ...") otherwise.
    Every call, answered or refused, is one `leak.trace` audit event (leak_audit)."""
    try:
        given = read_input(value)
    except InvalidInput:
        await record_refused_input(actor, app)
        raise
    return await audited(actor, app, given.kind, given.sha256,
                         lambda: _dispatch(actor, app, given))  # fmt: skip


async def trace_code(actor: Actor, app: App, typed: str) -> LeakTrace:
    """`trace_leak` for a typed trace code only: never reads a file, whatever is typed
    (for callers whose input is not a path on the gateway host, e.g. a web form)."""
    digest = hashlib.sha256(typed.encode("utf-8")).hexdigest()
    given = LeakInput("code", typed, digest, codes=code_candidates(typed))
    return await audited(actor, app, "code", digest, lambda: _dispatch(actor, app, given))


__all__ = ["LeakTrace", "code_candidates", "trace_code", "trace_leak"]
