"""Role grants on a real database: grant, revoke, list, and every scope refusal."""

from __future__ import annotations

import pytest

from admin.services.account_base import AccountError, Conflict, UnknownObject
from admin.services.actor import Actor, Forbidden, OutOfScope, Role
from policies.directory import EmployeeStatus
from testkit.accounts import AUDITOR, CLI, MOF_ADMIN, World


async def test_grant_list_revoke_round_trip_is_audited(world: World) -> None:
    grants = world.services.grants
    made = await grants.grant(CLI, "ALI@mof.example", "agency-admin", agency="mof")
    assert (made.address, made.role, made.agency, made.granted_by) == (
        "ali@mof.example", "agency-admin", "MOF", "cli:tester",
    )  # fmt: skip
    await grants.grant(CLI, "root@gov.example", Role.SYSTEM_ADMIN)
    listed = await grants.list_grants(CLI)
    assert [(g.address, g.role, g.agency) for g in listed] == [
        ("ali@mof.example", "agency-admin", "MOF"),
        ("root@gov.example", "system-admin", None),
    ]
    gone = await grants.revoke(CLI, "ali@mof.example", "agency-admin", agency="MOF")
    assert gone.id == made.id
    assert [g.address for g in await grants.list_grants(CLI)] == ["root@gov.example"]

    events = await world.events()
    assert [e["action"] for e in events] == ["admin.grant", "admin.grant", "admin.revoke"]
    first = events[0]
    assert first["actor"] == "cli:tester" and first["target"] == "ali@mof.example"
    assert first["details"] == {
        "by": {"account": "cli:tester", "role": "system-admin", "agency": None,
               "client": "local", "channel": "cli"},
        "before": None,
        "after": {"role": "agency-admin", "agency": "MOF"},
    }  # fmt: skip
    assert events[2]["details"]["before"] == {"role": "agency-admin", "agency": "MOF"}
    assert events[2]["details"]["after"] is None
    await world.audit_ok()


@pytest.mark.parametrize(
    ("address", "role", "agency", "error", "text"),
    [
        ("nobody@mof.example", "registrar", "MOF", UnknownObject, "unknown employee"),
        ("ali@mof.example", "registrar", "NOPE", UnknownObject, "unknown agency"),
        ("ali@mof.example", "registrar", None, AccountError, "needs an agency"),
        ("ali@mof.example", "system-admin", "MOF", AccountError, "not scoped"),
        ("ali@mof.example", "king", None, AccountError, "unknown role"),
    ],
)
async def test_bad_grants_are_refused_and_change_nothing(
    world: World, address: str, role: str, agency: str | None, error: type[Exception], text: str
) -> None:
    before = await world.audit_ok()
    with pytest.raises(error, match=text):
        await world.services.grants.grant(CLI, address, role, agency=agency)
    assert await world.services.grants.list_grants(CLI) == []
    assert await world.audit_ok() == before


async def test_grant_needs_an_active_employee_and_is_not_repeated(world: World) -> None:
    await world.directory.set_status("gone@moh.example", EmployeeStatus.SUSPENDED, actor="t")
    with pytest.raises(Conflict, match="suspended"):
        await world.services.grants.grant(CLI, "gone@moh.example", "registrar", agency="MOH")
    await world.services.grants.grant(CLI, "omar@moh.example", "registrar", agency="MOH")
    with pytest.raises(Conflict, match="already holds registrar at MOH"):
        await world.services.grants.grant(CLI, "omar@moh.example", "registrar", agency="MOH")
    with pytest.raises(UnknownObject, match="does not hold"):
        await world.services.grants.revoke(CLI, "omar@moh.example", "registrar", agency="MOF")


async def test_agency_admin_grants_inside_its_subtree_only(world: World) -> None:
    grants = world.services.grants
    made = await grants.grant(MOF_ADMIN, "sara@mof.example", "registrar", agency="MOF-TAX")
    assert made.granted_by == "ali@mof.example"
    await grants.grant(MOF_ADMIN, "sara@mof.example", "agency-admin", agency="MOF-TAX")
    # Outside the subtree: "not found", whatever the object (404, not 403).
    with pytest.raises(OutOfScope):
        await grants.grant(MOF_ADMIN, "omar@moh.example", "registrar", agency="MOH")
    with pytest.raises(OutOfScope):
        await grants.grant(MOF_ADMIN, "sara@mof.example", "registrar", agency="MOH")
    with pytest.raises(OutOfScope):
        await grants.grant(MOF_ADMIN, "omar@moh.example", "registrar", agency="MOF")
    # Never a role above its own, never an unscoped role: a fact about roles (403).
    with pytest.raises(Forbidden):
        await grants.grant(MOF_ADMIN, "sara@mof.example", "system-admin")
    with pytest.raises(Forbidden):
        await grants.grant(MOF_ADMIN, "sara@mof.example", "security-auditor")
    events = await world.events()
    assert [e["details"]["by"]["client"] for e in events] == ["192.0.2.7", "192.0.2.7"]
    assert {e["details"]["by"]["role"] for e in events} == {"agency-admin"}


async def test_list_shows_only_what_the_actor_may_see(world: World) -> None:
    grants = world.services.grants
    await grants.grant(CLI, "root@gov.example", "system-admin")
    await grants.grant(CLI, "sara@mof.example", "registrar", agency="MOF-TAX")
    await grants.grant(CLI, "omar@moh.example", "agency-admin", agency="MOH")
    await grants.grant(CLI, "omar@moh.example", "registrar", agency="MOF")  # MOH employee
    seen = await grants.list_grants(MOF_ADMIN)
    assert [(g.address, g.agency) for g in seen] == [("sara@mof.example", "MOF-TAX")]
    assert len(await grants.list_grants(AUDITOR)) == 4
    with pytest.raises(Forbidden):
        await grants.list_grants(Actor("r@mof.example", Role.REGISTRAR, "MOF"))


async def test_auditor_changes_no_grant(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.services.grants.grant(AUDITOR, "sara@mof.example", "registrar", agency="MOF")


async def test_revoking_a_role_ends_its_sessions(world: World) -> None:
    grant = await world.services.grants.grant(CLI, "ali@mof.example", "agency-admin", agency="MOF")
    actor = grant.actor(client="192.0.2.9", channel="web")
    started = await world.logins.start_session(actor)
    await world.services.grants.revoke(CLI, "ali@mof.example", "agency-admin", agency="MOF")
    from admin.services.login import SessionRefused

    with pytest.raises(SessionRefused, match="unknown"):
        await world.logins.touch_session(started.session_id, "192.0.2.9")
    revoke = (await world.events("admin.revoke"))[0]
    assert revoke["details"]["sessions_ended"] == 1
    await world.audit_ok()
