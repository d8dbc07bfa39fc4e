"""Directory use cases: agencies (list, show, add, change, move, retire, trust a CA).

Owns: one function per agency use case, each taking the `Actor` first, checking
the agency path before reading or writing, and naming the actor in the audit
event. Employees and identities are in `employees.py`, bulk import in
`directory_import.py`. Must not: write rows itself (gateway.store.directory does).
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from admin.context import App
from admin.services.actor import Actor, Area, Forbidden
from admin.services.errors import Conflict, InvalidInput, NotFound
from admin.services.model import Existing, Frozen
from admin.services.scope import acting, actor_subtree, check, directory_errors, home_path, tree
from gateway.store.directory import AgencyInput, DirectoryError
from gateway.store.directory.scope import AgencyTree
from gateway.store.directory.values import new_agency
from policies.directory import AgencyStatus

MAX_KEY_FILE = 1024 * 1024


class AgencyAdd(Frozen):
    code: str
    name_en: str
    name_ar: str = ""
    kind: str
    domain: str
    parent: str | None = None


class AgencyMove(Frozen):
    code: str
    parent: str | None = None  # None: make it a root


class AgencyChange(Frozen):
    """The fields to change; None leaves a field as it is."""

    code: str
    name_en: str | None = None
    name_ar: str | None = None
    kind: str | None = None


class TrustCa(Frozen):
    code: str
    pem: bytes
    source: str = "CA certificate"  # named in error messages (e.g. the file name)


class AgencyView(Frozen):
    code: str
    name_en: str
    name_ar: str
    kind: str
    domain: str
    parent: str | None
    status: str
    employees_issued: int


class AgencyNode(Frozen):
    code: str
    name_en: str
    kind: str
    children: list[AgencyNode]


class TrustedCa(Frozen):
    fingerprint: str
    subject: str


class AgencyDetail(AgencyView):
    ancestors: list[str]  # nearest first
    subtree: AgencyNode
    employees: int
    trusted_cas: list[TrustedCa]


class TrustedCaResult(Frozen):
    agency: str
    fingerprint: str
    subject: str


class TrustedCaExisting(TrustedCaResult, Existing):
    """The CA the agency trusted already (a retry): nothing written."""


def unknown_agency(code: str) -> NotFound:
    return NotFound(f"unknown agency {code.strip().upper()!r}")


def _visible(view: dict[str, Any], seen: frozenset[str] | None) -> dict[str, Any]:
    """Hide what lies above a scoped actor's subtree (the parent of its root)."""
    if seen is not None and view.get("parent") not in seen:
        return {**view, "parent": None}
    return view


async def list_agencies(actor: Actor, app: App) -> list[AgencyView]:
    """Every agency the actor may see (a scoped actor: its subtree only)."""
    agencies = await tree(app)
    seen = actor_subtree(actor, agencies)
    check(actor, Area.DIRECTORY, write=False, path=home_path(actor, agencies))
    rows = await app.directory.list_agencies()
    return [AgencyView(**_visible(r, seen)) for r in rows if seen is None or r["code"] in seen]


async def agency_tree(actor: Actor, app: App) -> list[AgencyNode]:
    """The agency tree the actor may see, as nested nodes: every root for an unscoped
    actor, the actor's own agency as the only root for a scoped one."""
    views = await list_agencies(actor, app)
    children: dict[str | None, list[AgencyView]] = {}
    for view in views:
        children.setdefault(view.parent, []).append(view)

    def node(view: AgencyView) -> AgencyNode:
        below = sorted(children.get(view.code, []), key=lambda v: v.code)
        return AgencyNode(
            code=view.code, name_en=view.name_en, kind=view.kind,
            children=[node(child) for child in below],
        )  # fmt: skip

    return [node(root) for root in sorted(children.get(None, []), key=lambda v: v.code)]


async def show_agency(actor: Actor, app: App, code: str) -> AgencyDetail:
    """The agency, its ancestors (nearest first), subtree, staff count and trusted CAs."""
    agencies = await tree(app)
    path = agencies.path(code.strip().upper())
    check(actor, Area.DIRECTORY, write=False, path=path, missing=unknown_agency(code))
    with directory_errors():
        view = await app.directory.show_agency(code)
    seen = actor_subtree(actor, agencies)
    if seen is not None:
        view["ancestors"] = [a for a in view["ancestors"] if a in seen]
    return AgencyDetail(**_visible(view, seen))


def _path_below(agencies: AgencyTree, parent: str | None, code: str) -> tuple[str, ...] | None:
    """Where a new (or moved) agency `code` would sit: under `parent`, or as a root."""
    if not parent:
        return (code.strip().upper(),)
    above = agencies.path(parent.strip().upper())
    return None if above is None else (*above, code.strip().upper())


async def add_agency(actor: Actor, app: App, data: AgencyAdd) -> AgencyView:
    """Add an agency under its parent (or as a root: system administrators only)."""
    agencies = await tree(app)
    path = _path_below(agencies, data.parent, data.code)
    missing = unknown_agency(data.parent or "")
    check(actor, Area.DIRECTORY, write=True, path=path, missing=missing)
    with acting(actor), directory_errors():
        row = await app.directory.add_agency(
            AgencyInput(data.code, data.name_en, data.name_ar, data.kind, data.domain, data.parent),
            actor=actor.audit_name,
        )
    return AgencyView(**row)


def _same_agency(data: AgencyAdd, existing: AgencyView) -> bool:
    """Whether an add asks for exactly the active agency that exists (same normalised fields)."""
    try:
        wanted = new_agency(
            AgencyInput(data.code, data.name_en, data.name_ar, data.kind, data.domain, None), None
        )
    except DirectoryError:
        return False
    parent = data.parent.strip().upper() if data.parent else None
    return existing.status == AgencyStatus.ACTIVE.value and (
        (wanted.code, wanted.name_en, wanted.name_ar, wanted.kind, wanted.domain, parent)
        == (existing.code, existing.name_en, existing.name_ar, existing.kind, existing.domain,
            existing.parent)
    )  # fmt: skip


async def add_agency_once(actor: Actor, app: App, data: AgencyAdd) -> tuple[AgencyView, bool]:
    """Add an agency, safe to retry: (the agency, True when it was added now).

    When the same active agency already exists (every field equal after
    normalisation, same parent) it is returned unchanged with False and nothing is
    audited; any other agency with that code is a `Conflict`, as for `add_agency`.
    """
    try:
        return await add_agency(actor, app, data), True
    except Conflict as clash:
        try:
            row = await app.directory.show_agency(data.code)
        except DirectoryError:
            raise clash from None
        existing = AgencyView(**{name: row[name] for name in AgencyView.model_fields})
        if not _same_agency(data, existing):
            raise clash from None
    return existing, False


async def move_agency(actor: Actor, app: App, data: AgencyMove) -> AgencyView:
    """Move an agency under another (both inside the actor's scope); never a cycle."""
    agencies = await tree(app)
    here = agencies.path(data.code.strip().upper())
    check(actor, Area.DIRECTORY, write=True, path=here, missing=unknown_agency(data.code))
    there = _path_below(agencies, data.parent, data.code)
    check(actor, Area.DIRECTORY, write=True, path=there, missing=unknown_agency(data.parent or ""))
    with acting(actor), directory_errors():
        row = await app.directory.set_parent(data.code, data.parent, actor=actor.audit_name)
    return AgencyView(**row)


async def change_agency(actor: Actor, app: App, data: AgencyChange) -> AgencyView:
    """Change an agency's names or kind; the audit event records before and after."""
    agencies = await tree(app)
    path = agencies.path(data.code.strip().upper())
    check(actor, Area.DIRECTORY, write=True, path=path, missing=unknown_agency(data.code))
    changes = data.model_dump(exclude={"code"}, exclude_none=True)
    with acting(actor), directory_errors():
        row = await app.directory.change_agency(data.code, changes, actor=actor.audit_name)
    return AgencyView(**_visible(row, actor_subtree(actor, agencies)))


async def retire_agency(
    actor: Actor, app: App, code: str, *, existing_ok: bool = False
) -> AgencyView:
    """Retire an agency (status suspended): it takes no new employees.

    A scoped actor may retire agencies below its own, never its own subtree root.
    An agency retired already is a `Conflict`, or with `existing_ok` the retired
    agency as it is (nothing written or audited): a safe retry.
    """
    agencies = await tree(app)
    path = agencies.path(code.strip().upper())
    check(actor, Area.DIRECTORY, write=True, path=path, missing=unknown_agency(code))
    if path is not None and actor.agency == path[-1]:
        raise Forbidden(f"role {actor.role.value} may not retire its own agency")
    try:
        with acting(actor), directory_errors():
            row = await app.directory.set_agency_status(
                code, AgencyStatus.SUSPENDED, actor=actor.audit_name
            )
    except Conflict as clash:
        if not existing_ok:
            raise
        with directory_errors():
            row = await app.directory.show_agency(code)
        if row["status"] != AgencyStatus.SUSPENDED.value:
            raise clash from None
        row = {name: row[name] for name in AgencyView.model_fields}
    return AgencyView(**_visible(row, actor_subtree(actor, agencies)))


def read_ca(data: TrustCa) -> tuple[x509.Certificate, str, str]:
    """(certificate, SHA-256 fingerprint, PEM) of a CA certificate; InvalidInput otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(data.pem[:MAX_KEY_FILE])
    except ValueError:
        raise _invalid(f"{data.source}: not a PEM X.509 certificate") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise _invalid(f"{data.source}: not a CA certificate (basicConstraints CA:TRUE missing)")
    fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
    return cert, fingerprint, cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, problems=[message])


async def trust_ca(
    actor: Actor, app: App, data: TrustCa, *, existing_ok: bool = False
) -> TrustedCaResult:
    """Trust a CA to issue S/MIME certificates for the agency and the agencies below it.

    A CA the agency trusts already is a `Conflict`, or with `existing_ok` that
    trusted CA as a `TrustedCaExisting` (nothing written or audited): a safe retry.
    """
    cert, fingerprint, pem = read_ca(data)
    agencies = await tree(app)
    path = agencies.path(data.code.strip().upper())
    check(actor, Area.DIRECTORY, write=True, path=path, missing=unknown_agency(data.code))
    try:
        with acting(actor), directory_errors():
            row = await app.directory.trust_ca(
                data.code,
                fingerprint=fingerprint,
                subject=cert.subject.rfc4514_string(),
                pem=pem,
                actor=actor.audit_name,
            )
    except Conflict as clash:
        if not existing_ok:
            raise
        with directory_errors():
            detail = await app.directory.show_agency(data.code)
        trusted = [ca for ca in detail["trusted_cas"] if ca["fingerprint"] == fingerprint]
        if not trusted:
            raise clash from None
        return TrustedCaExisting(
            agency=detail["code"], fingerprint=fingerprint, subject=trusted[0]["subject"]
        )
    return TrustedCaResult(**row)
