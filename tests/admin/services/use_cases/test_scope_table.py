"""Every service use case called directly as each role, against an object inside
the scoped actors' subtree (MOF > MOF-TAX) and one outside it (MOH), on a real
SQLite database: nothing outside the subtree is readable or writable, the
security auditor changes nothing but alert acknowledgements, the registrar touches only messages, and a
refusal changes nothing (the audit chain and the directory version stay put)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from admin.services import (
    alerts,
    audit_archive,
    bulk_import,
    directory,
    employees,
    messages,
    policy,
    queue,
)
from admin.services import audit as audit_svc
from admin.services.actor import Actor, Area, Forbidden, OutOfScope, Role
from admin.services.errors import InvalidInput
from gateway.store.directory import directory_version
from gateway.store.models import AuditEvent
from policies import directory as policies_directory
from testkit.admin_use_cases import (
    ACTORS,
    MOH_DOCTOR,
    MOH_NURSE,
    PASSWORD,
    TAX_CLERK,
    TAX_OTHER,
    World,
    ca_pem,
    person_cert,
)

Call = Callable[[Actor, World], Awaitable[Any]]

CSV_HEAD = "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"


@dataclass(frozen=True)
class Case:
    name: str
    area: Area
    write: bool
    # "in" (the subtree, or a list), "out" (MOH), "global" (no agency), or
    # "rows-out": an import whose rows name an agency outside
    scope: str
    call: Call


def _policy(world: World) -> policy.PolicySource:
    return policy.PolicySource(path=str(world.app.settings.policy_file))


CASES_YAML = "cases:\n  - from: clerk@tax.mof.gov.example\n    to: doctor@moh.gov.example\n" \
             "    expect: deny\n"  # fmt: skip


def cases() -> list[Case]:
    d, e, m, q, a = directory, employees, messages, queue, audit_svc
    tax_csv = CSV_HEAD + "agency,MOF-TAX-N,North,,branch,tax.mof.gov.example,MOF-TAX,,,,\n"
    moh_csv = CSV_HEAD + "agency,MOH-N,North,,branch,moh.gov.example,MOH,,,,\n"
    R, W = False, True
    tax_pem, tax_fpr = person_cert(TAX_CLERK)
    moh_pem, moh_fpr = person_cert(MOH_DOCTOR)
    active = policies_directory.EmployeeStatus.ACTIVE
    DIR, MSG, QUE, AUD = Area.DIRECTORY, Area.MESSAGES, Area.QUEUE, Area.AUDIT
    return [
        # ---- the directory
        Case("list agencies", DIR, R, "in", lambda x, w: d.list_agencies(x, w.app)),
        Case("show agency", DIR, R, "in", lambda x, w: d.show_agency(x, w.app, "MOF-TAX")),
        Case("show agency", DIR, R, "out", lambda x, w: d.show_agency(x, w.app, "MOH")),
        Case(
            "add agency",
            DIR,
            W,
            "in",
            lambda x, w: d.add_agency(
                x,
                w.app,
                d.AgencyAdd(
                    code="MOF-TAX-S",
                    name_en="South",
                    kind="branch",
                    domain="tax.mof.gov.example",
                    parent="MOF-TAX",
                ),
            ),
        ),
        Case(
            "add agency",
            DIR,
            W,
            "out",
            lambda x, w: d.add_agency(
                x,
                w.app,
                d.AgencyAdd(
                    code="MOH-S",
                    name_en="South",
                    kind="branch",
                    domain="moh.gov.example",
                    parent="MOH",
                ),
            ),
        ),
        Case(
            "add root agency",
            DIR,
            W,
            "global",
            lambda x, w: d.add_agency(
                x,
                w.app,
                d.AgencyAdd(
                    code="MOJ", name_en="Justice", kind="ministry", domain="moj.gov.example"
                ),
            ),
        ),
        Case(
            "move agency",
            DIR,
            W,
            "in",
            lambda x, w: d.move_agency(x, w.app, d.AgencyMove(code="MOF-TAX", parent="MOF")),
        ),
        Case(
            "move agency",
            DIR,
            W,
            "out",
            lambda x, w: d.move_agency(x, w.app, d.AgencyMove(code="MOH", parent=None)),
        ),
        Case(
            "trust CA",
            DIR,
            W,
            "in",
            lambda x, w: d.trust_ca(x, w.app, d.TrustCa(code="MOF-TAX", pem=ca_pem("Tax CA"))),
        ),
        Case(
            "trust CA",
            DIR,
            W,
            "out",
            lambda x, w: d.trust_ca(x, w.app, d.TrustCa(code="MOH", pem=ca_pem("Health CA"))),
        ),
        Case("list employees", DIR, R, "in", lambda x, w: e.list_employees(x, w.app)),
        Case("list employees of", DIR, R, "in", lambda x, w: e.list_employees(x, w.app, "MOF-TAX")),
        Case("list employees of", DIR, R, "out", lambda x, w: e.list_employees(x, w.app, "MOH")),
        Case("show employee", DIR, R, "in", lambda x, w: e.show_employee(x, w.app, TAX_CLERK)),
        Case("show employee", DIR, R, "out", lambda x, w: e.show_employee(x, w.app, MOH_DOCTOR)),
        Case(
            "add employee",
            DIR,
            W,
            "in",
            lambda x, w: e.add_employee(
                x,
                w.app,
                e.EmployeeAdd(address="new@tax.mof.gov.example", agency="MOF-TAX", name_en="New"),
            ),
        ),
        Case(
            "add employee",
            DIR,
            W,
            "out",
            lambda x, w: e.add_employee(
                x, w.app, e.EmployeeAdd(address="new@moh.gov.example", agency="MOH", name_en="New")
            ),
        ),
        Case(
            "suspend employee", DIR, W, "in", lambda x, w: e.suspend_employee(x, w.app, TAX_OTHER)
        ),
        Case(
            "suspend employee", DIR, W, "out", lambda x, w: e.suspend_employee(x, w.app, MOH_NURSE)
        ),
        Case(
            "reset password",
            DIR,
            W,
            "in",
            lambda x, w: e.reset_password(
                x, w.app, e.PasswordReset(address=TAX_CLERK, password=PASSWORD)
            ),
        ),
        Case(
            "reset password",
            DIR,
            W,
            "out",
            lambda x, w: e.reset_password(
                x, w.app, e.PasswordReset(address=MOH_DOCTOR, password=PASSWORD)
            ),
        ),
        Case(
            "import directory",
            DIR,
            W,
            "in",
            lambda x, w: bulk_import.import_directory(
                x, w.app, bulk_import.DirectoryImport(data=tax_csv.encode())
            ),
        ),
        Case(
            "import directory",
            DIR,
            W,
            "rows-out",
            lambda x, w: bulk_import.import_directory(
                x, w.app, bulk_import.DirectoryImport(data=moh_csv.encode())
            ),
        ),
        Case(
            "change agency",
            DIR,
            W,
            "in",
            lambda x, w: d.change_agency(x, w.app, d.AgencyChange(code="MOF-TAX", name_en="Taxes")),
        ),
        Case(
            "change agency",
            DIR,
            W,
            "out",
            lambda x, w: d.change_agency(
                x, w.app, d.AgencyChange(code="MOH", name_en="Health care")
            ),
        ),
        Case(
            "change employee",
            DIR,
            W,
            "in",
            lambda x, w: e.change_employee(
                x, w.app, e.EmployeeChange(address=TAX_CLERK, clearance="confidential")
            ),
        ),
        Case(
            "change employee",
            DIR,
            W,
            "out",
            lambda x, w: e.change_employee(
                x, w.app, e.EmployeeChange(address=MOH_DOCTOR, clearance="secret")
            ),
        ),
        Case(
            "reactivate employee",
            DIR,
            W,
            "in",
            lambda x, w: e.set_employee_status(
                x, w.app, e.StatusChange(address=TAX_OTHER, status=active)
            ),
        ),
        Case(
            "reactivate employee",
            DIR,
            W,
            "out",
            lambda x, w: e.set_employee_status(
                x, w.app, e.StatusChange(address=MOH_NURSE, status=active)
            ),
        ),
        Case(
            "register key",
            DIR,
            W,
            "in",
            lambda x, w: e.register_identity(
                x, w.app, e.IdentityRegister(address=TAX_CLERK, material=tax_pem)
            ),
        ),
        Case(
            "register key",
            DIR,
            W,
            "out",
            lambda x, w: e.register_identity(
                x, w.app, e.IdentityRegister(address=MOH_DOCTOR, material=moh_pem)
            ),
        ),
        Case(
            "revoke key",
            DIR,
            W,
            "in",
            lambda x, w: e.revoke_identity(
                x, w.app, e.IdentityRevoke(address=TAX_CLERK, fingerprint=tax_fpr)
            ),
        ),
        Case(
            "revoke key",
            DIR,
            W,
            "out",
            lambda x, w: e.revoke_identity(
                x, w.app, e.IdentityRevoke(address=MOH_DOCTOR, fingerprint=moh_fpr)
            ),
        ),
        Case("retire agency", DIR, W, "in", lambda x, w: d.retire_agency(x, w.app, "MOF-TAX")),
        Case("retire agency", DIR, W, "out", lambda x, w: d.retire_agency(x, w.app, "MOH")),
        # ---- the policy (global)
        Case(
            "check policy",
            Area.POLICY,
            R,
            "global",
            lambda x, w: policy.check_source(x, w.app, _policy(w)),
        ),
        Case(
            "explain",
            Area.POLICY,
            R,
            "global",
            lambda x, w: policy.explain_decision(
                x, w.app, policy.ExplainQuery(sender=TAX_CLERK, recipient=MOH_DOCTOR)
            ),
        ),
        Case(
            "case table",
            Area.POLICY,
            R,
            "global",
            lambda x, w: policy.run_case_table(
                x,
                w.app,
                policy.CaseRun(policy=_policy(w), cases=policy.PolicySource(text=CASES_YAML)),
            ),
        ),
        Case(
            "reload policy", Area.POLICY, W, "global", lambda x, w: policy.reload_policy(x, w.app)
        ),
        # ---- messages and the queue
        Case("show message", MSG, R, "in", lambda x, w: m.show_message(x, w.app, w.tax_message)),
        Case("show message", MSG, R, "out", lambda x, w: m.show_message(x, w.app, w.moh_message)),
        Case("list queue", QUE, R, "in", lambda x, w: q.list_entries(x, w.app, q.QueueQuery())),
        Case("show entry", QUE, R, "in", lambda x, w: q.show(x, w.app, w.tax_entry)),
        Case("show entry", QUE, R, "out", lambda x, w: q.show(x, w.app, w.moh_entry)),
        Case("hold", QUE, W, "in", lambda x, w: q.hold(x, w.app, w.tax_entry)),
        Case("hold", QUE, W, "out", lambda x, w: q.hold(x, w.app, w.moh_entry)),
        Case("release", QUE, W, "in", lambda x, w: q.release(x, w.app, w.tax_entry)),
        Case("release", QUE, W, "out", lambda x, w: q.release(x, w.app, w.moh_entry)),
        Case("retry", QUE, W, "in", lambda x, w: q.retry(x, w.app, w.tax_entry)),
        Case("retry", QUE, W, "out", lambda x, w: q.retry(x, w.app, w.moh_entry)),
        Case("purge", QUE, W, "in", lambda x, w: q.purge(x, w.app, w.tax_entry, "sent in error")),
        Case("purge", QUE, W, "out", lambda x, w: q.purge(x, w.app, w.moh_entry, "sent in error")),
        Case(
            "revoke",
            MSG,
            W,
            "in",
            lambda x, w: m.revoke_message(
                x, w.app, m.Revocation(registry=w.tax_message, reason="issued in error")
            ),
        ),
        Case(
            "revoke",
            MSG,
            W,
            "out",
            lambda x, w: m.revoke_message(
                x, w.app, m.Revocation(registry=w.moh_message, reason="issued in error")
            ),
        ),
        # ---- audit and access trail
        Case(
            "audit events",
            AUD,
            R,
            "in",
            lambda x, w: a.query_events(x, w.app, a.AuditQuery(limit=1000)),
        ),
        Case("verify chain", AUD, R, "global", lambda x, w: a.verify_chain(x, w.app)),
        Case("audit checkpoint", AUD, W, "global", lambda x, w: a.checkpoint(x, w.app)),
        Case(
            "audit export",
            AUD,
            R,
            "global",
            lambda x, w: audit_archive.export_archive(
                x, w.app, "1d", str(w.app.settings.data_dir / f"export-{uuid.uuid4().hex}")
            ),
        ),
        Case(
            "access trail",
            Area.ACCESS_TRAIL,
            R,
            "in",
            lambda x, w: a.access_trail(x, w.app, a.AccessQuery()),
        ),
        # ---- alerts (they belong to no agency)
        Case(
            "list alerts",
            Area.ALERTS,
            R,
            "global",
            lambda x, w: alerts.list_alerts(x, w.app, alerts.AlertQuery()),
        ),
        Case(
            "acknowledge alert",
            Area.ALERTS,
            W,
            "global",
            lambda x, w: alerts.acknowledge(x, w.app, w.alert, "seen"),
        ),
    ]


def expected(role: Role, case: Case) -> type[Exception] | None:
    """The refusal each role must get (None: the call succeeds), written out by hand:
    first what the role may never do (Forbidden), then the place (OutOfScope)."""
    if role is Role.SYSTEM_ADMIN:
        return None
    if role is Role.SECURITY_AUDITOR:
        # Acknowledging an alert is the one change an auditor makes (DESIGN §12).
        return Forbidden if case.write and case.area is not Area.ALERTS else None
    if role is Role.REGISTRAR:
        allowed = case.area is Area.MESSAGES
    else:  # agency-admin
        allowed = case.area in (Area.DIRECTORY, Area.MESSAGES, Area.QUEUE) or (
            not case.write and case.area in (Area.AUDIT, Area.ACCESS_TRAIL)
        )
    if not allowed:
        return Forbidden
    if case.scope == "rows-out":
        # The agency-admin's rows are checked against its subtree only, so an
        # agency outside reads as unknown (a bad row).
        return InvalidInput
    return None if case.scope == "in" else OutOfScope


async def _state(world: World) -> tuple[int, int]:
    async with world.app.sessions() as session:
        events = await session.scalar(select(func.count()).select_from(AuditEvent))
        return int(events or 0), await directory_version(session)


@pytest.mark.parametrize("who", list(ACTORS))
async def test_every_use_case_as_each_role(world: World, who: str) -> None:
    actor = ACTORS[who]
    for case in cases():
        want = expected(actor.role, case)
        before = await _state(world)
        label = f"{who}: {case.name} ({case.scope})"
        if want is None:
            await case.call(actor, world)
            if case.write:
                assert (await _state(world))[0] > before[0], f"{label}: not audited"
        else:
            with pytest.raises(want):
                await case.call(actor, world)
            assert await _state(world) == before, f"{label}: a refusal changed something"
