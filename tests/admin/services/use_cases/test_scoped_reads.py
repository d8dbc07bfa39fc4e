"""What a scoped actor's lists contain, what message tracking shows (never the
content), how refusals are typed, and who an audit event names."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from admin.services import audit as audit_svc
from admin.services import bulk_import, directory, employees, messages, queue
from admin.services.actor import Forbidden, OutOfScope
from admin.services.errors import Conflict, InvalidInput, NotFound, http_status
from gateway.store.models import AuditEvent
from testkit.admin_use_cases import (
    ADMIN,
    AUDITOR,
    MOF_ADMIN,
    MOF_REGISTRAR,
    MOH_DOCTOR,
    TAX_CLERK,
    World,
)

SUBTREE = {"MOF", "MOF-TAX"}


async def test_an_agency_admin_lists_only_its_subtree(world: World) -> None:
    app = world.app
    agencies = await directory.list_agencies(MOF_ADMIN, app)
    assert {a.code for a in agencies} == SUBTREE
    assert {a.code for a in await directory.list_agencies(AUDITOR, app)} == {*SUBTREE, "MOH"}
    people = await employees.list_employees(MOF_ADMIN, app)
    assert people and all(p.agency in SUBTREE for p in people)
    assert MOH_DOCTOR in {p.address for p in await employees.list_employees(ADMIN, app)}
    entries = await queue.list_entries(MOF_ADMIN, app, queue.QueueQuery())
    assert [e.registry for e in entries] == [world.tax_message]
    assert len(await queue.list_entries(AUDITOR, app, queue.QueueQuery())) == 2


async def test_an_agency_admin_reads_only_audit_events_about_its_subtree(world: World) -> None:
    app = world.app
    mine = await audit_svc.query_events(MOF_ADMIN, app, audit_svc.AuditQuery(limit=1000))
    targets = {e.target for e in mine}
    assert {"MOF", "MOF-TAX", TAX_CLERK, world.tax_message} <= targets
    assert not targets & {"MOH", MOH_DOCTOR, world.moh_message}
    everything = await audit_svc.query_events(AUDITOR, app, audit_svc.AuditQuery(limit=1000))
    assert {"MOH", MOH_DOCTOR, world.moh_message} <= {e.target for e in everything}


async def test_the_access_trail_of_a_subtree(world: World) -> None:
    mine = await audit_svc.access_trail(MOF_ADMIN, world.app, audit_svc.AccessQuery())
    # Its message read by an outsider, and an outside message read by its employee;
    # not the nurse reading the outside message.
    assert {(e.employee, e.registry) for e in mine} == {
        (MOH_DOCTOR, world.tax_message),
        (TAX_CLERK, world.moh_message),
    }
    assert len(await audit_svc.access_trail(AUDITOR, world.app, audit_svc.AccessQuery())) == 3


async def test_message_tracking_shows_every_copy_and_never_the_content(world: World) -> None:
    tracked = await messages.show_message(MOF_REGISTRAR, world.app, world.tax_message)
    assert tracked.agency == "MOF-TAX" and tracked.sender == TAX_CLERK
    [copy] = tracked.copies
    assert (copy.recipient, copy.target, copy.state, copy.attempts) == (
        MOH_DOCTOR, "local", "queued", 0,
    )  # fmt: skip
    assert copy.delivered_at is None and copy.queue_entry == world.tax_entry
    assert [r.kind for r in tracked.receipts] == ["acceptance"]
    text = tracked.model_dump_json()
    assert "confidential body" not in text and "never shown" not in text and "PREFIX" not in text


async def test_unknown_and_outside_look_the_same_to_a_scoped_actor(world: World) -> None:
    for call in [
        lambda: employees.show_employee(MOF_ADMIN, world.app, MOH_DOCTOR),
        lambda: employees.show_employee(MOF_ADMIN, world.app, "nobody@tax.mof.gov.example"),
        lambda: directory.show_agency(MOF_ADMIN, world.app, "NOPE"),
        lambda: messages.show_message(MOF_REGISTRAR, world.app, "MOF-TAX/2020/000999"),
        lambda: queue.show(MOF_ADMIN, world.app, 999_999),
    ]:
        with pytest.raises(OutOfScope) as caught:
            await call()
        assert str(caught.value) == "not found" and http_status(caught.value) == 404


async def test_refusals_are_typed_with_the_reasons_the_cli_shows(world: World) -> None:
    app = world.app
    with pytest.raises(NotFound, match=r"unknown employee 'nobody@moh\.gov\.example'"):
        await employees.show_employee(ADMIN, app, "nobody@moh.gov.example")
    with pytest.raises(Conflict, match="already exists"):
        await directory.add_agency(ADMIN, app, directory.AgencyAdd(
            code="MOH", name_en="x", kind="ministry", domain="moh.gov.example"))  # fmt: skip
    with pytest.raises(InvalidInput, match="cycle"):
        await directory.move_agency(ADMIN, app, directory.AgencyMove(code="MOF", parent="MOF-TAX"))
    with pytest.raises(Conflict, match="cannot release"):
        await queue.release(ADMIN, app, world.tax_entry)
    bad = b"type,code\nagency,\nperson,X\n"
    with pytest.raises(InvalidInput) as caught:
        await bulk_import.import_directory(
            ADMIN, app, bulk_import.DirectoryImport(data=bad, source="f.csv")
        )
    assert "nothing imported" in str(caught.value) and len(caught.value.problems) >= 1
    assert all(line.startswith("f.csv: ") for line in caught.value.problems)
    assert http_status(caught.value) == 422


async def test_an_audit_event_names_account_role_client_and_channel(world: World) -> None:
    await employees.suspend_employee(MOF_ADMIN, world.app, TAX_CLERK)
    async with world.app.sessions() as session:
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "employee.suspend")
        )
    assert event is not None and event.actor == MOF_ADMIN.account
    acting = json.loads(event.details)["acting"]
    assert acting == {"role": "agency-admin", "client": "192.0.2.2", "channel": "cli"}
    report = await audit_svc.verify_chain(ADMIN, world.app)
    assert report.ok, report.problems


async def test_changes_are_audited_with_before_and_after(world: World) -> None:
    app = world.app
    change = employees.EmployeeChange(address=TAX_CLERK, clearance="secret", role="head")
    view = await employees.change_employee(MOF_ADMIN, app, change)
    assert (view.clearance, view.role) == ("secret", "head")
    await directory.change_agency(
        MOF_ADMIN, app, directory.AgencyChange(code="MOF-TAX", name_en="Taxes")
    )
    async with app.sessions() as session:
        events = {
            e.action: json.loads(e.details)
            for e in (await session.scalars(select(AuditEvent))).all()
            if e.action in ("employee.change", "agency.change")
        }
    assert events["employee.change"]["clearance"] == {"from": "internal", "to": "secret"}
    assert events["employee.change"]["role"] == {"from": "staff", "to": "head"}
    assert events["agency.change"]["name_en"] == {"from": "Tax", "to": "Taxes"}
    with pytest.raises(InvalidInput, match="clearance"):
        await employees.change_employee(
            ADMIN, app, employees.EmployeeChange(address=TAX_CLERK, clearance="top")
        )


async def test_an_agency_admin_cannot_retire_its_own_agency(world: World) -> None:
    with pytest.raises(Forbidden):
        await directory.retire_agency(MOF_ADMIN, world.app, "MOF")
    retired = await directory.retire_agency(MOF_ADMIN, world.app, "MOF-TAX")
    assert retired.status == "suspended"
    with pytest.raises(Conflict, match="already suspended"):
        await directory.retire_agency(ADMIN, world.app, "MOF-TAX")
    with pytest.raises(InvalidInput, match="suspended"):
        await employees.add_employee(ADMIN, world.app, employees.EmployeeAdd(
            address="late@tax.mof.gov.example", agency="MOF-TAX", name_en="Late"))  # fmt: skip


async def test_an_import_names_no_agency_outside_the_subtree(world: World) -> None:
    """A row under MOH (which exists) gets the same answer as one under an agency that
    does not exist; a row inside the subtree is imported."""
    head = "type,code,name_en,name_ar,kind,domain,parent,address,agency,role,clearance\n"

    def csv(parent: str, code: str) -> bulk_import.DirectoryImport:
        row = f"agency,{code},North,,branch,moh.gov.example,{parent},,,,\n"
        return bulk_import.DirectoryImport(data=(head + row).encode(), source="f.csv")

    answers = []
    for parent in ["MOH", "NOPE"]:
        with pytest.raises(InvalidInput) as caught:
            await bulk_import.import_directory(MOF_ADMIN, world.app, csv(parent, "NEWAG"))
        answers.append([x.replace(f"parent {parent}", "parent P") for x in caught.value.problems])
    assert answers[0] == answers[1] and "unknown parent" in answers[0][0]
    row = "agency,MOF-TAX-N,North,,branch,tax.mof.gov.example,MOF-TAX,,,,\n"
    done = await bulk_import.import_directory(
        MOF_ADMIN, world.app, bulk_import.DirectoryImport(data=(head + row).encode())
    )
    assert (done.agencies, done.employees, done.dry_run) == (1, 0, False)
