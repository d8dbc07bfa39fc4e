"""The permission rule of the management plane (DESIGN §12), as a table."""

from __future__ import annotations

import pytest

from admin.services.actor import (
    Actor,
    Area,
    Forbidden,
    OutOfScope,
    Role,
    require,
    require_grant,
)

MOF = ["GOV", "MOF"]  # an object of the Ministry of Finance, under the government root
MOH = ["GOV", "MOH"]

ADMIN = Actor("root@gov.example", Role.SYSTEM_ADMIN)
MOF_ADMIN = Actor("a@mof.example", Role.AGENCY_ADMIN, agency="MOF")
AUDITOR = Actor("s@gov.example", Role.SECURITY_AUDITOR)
MOF_REGISTRAR = Actor("r@mof.example", Role.REGISTRAR, agency="MOF")


@pytest.mark.parametrize("area", list(Area))
@pytest.mark.parametrize("write", [False, True])
def test_system_admin_may_do_everything(area: Area, write: bool) -> None:
    require(ADMIN, area, write=write, agency_path=MOH)
    require(ADMIN, area, write=write, agency_path=None)


@pytest.mark.parametrize("area", list(Area))
def test_auditor_reads_everything_and_changes_only_alerts(area: Area) -> None:
    require(AUDITOR, area, write=False, agency_path=MOF)
    if area is Area.ALERTS:
        require(AUDITOR, area, write=True, agency_path=None)
    else:
        with pytest.raises(Forbidden):
            require(AUDITOR, area, write=True, agency_path=MOF)


@pytest.mark.parametrize("area", list(Area))
@pytest.mark.parametrize("write", [False, True])
def test_agency_admin_sees_nothing_outside_its_subtree(area: Area, write: bool) -> None:
    # Out of scope (404) where the role has the area at all, else Forbidden (403).
    expected = OutOfScope if may_role(area, write) else Forbidden
    with pytest.raises(expected):
        require(MOF_ADMIN, area, write=write, agency_path=MOH)
    with pytest.raises(expected):
        require(MOF_ADMIN, area, write=write, agency_path=None)


def may_role(area: Area, write: bool) -> bool:
    try:
        require(MOF_ADMIN, area, write=write, agency_path=MOF)
    except Forbidden:
        return False
    return True


def test_agency_admin_manages_its_subtree_but_not_policy() -> None:
    require(MOF_ADMIN, Area.DIRECTORY, write=True, agency_path=[*MOF, "MOF-TAX"])
    require(MOF_ADMIN, Area.AUDIT, write=False, agency_path=MOF)
    with pytest.raises(Forbidden):
        require(MOF_ADMIN, Area.POLICY, write=True, agency_path=MOF)
    with pytest.raises(Forbidden):
        require(MOF_ADMIN, Area.AUDIT, write=True, agency_path=MOF)


def test_registrar_tracks_and_revokes_only() -> None:
    require(MOF_REGISTRAR, Area.MESSAGES, write=True, agency_path=MOF)
    with pytest.raises(Forbidden):
        require(MOF_REGISTRAR, Area.DIRECTORY, write=False, agency_path=MOF)
    with pytest.raises(OutOfScope):
        require(MOF_REGISTRAR, Area.MESSAGES, write=False, agency_path=MOH)


def test_grants_never_above_the_granters_role() -> None:
    require_grant(ADMIN, Role.SYSTEM_ADMIN, None)
    require_grant(MOF_ADMIN, Role.REGISTRAR, MOF)
    require_grant(MOF_ADMIN, Role.AGENCY_ADMIN, [*MOF, "MOF-TAX"])
    for role in (Role.SYSTEM_ADMIN, Role.SECURITY_AUDITOR):
        with pytest.raises(Forbidden):
            require_grant(MOF_ADMIN, role, MOF)
    with pytest.raises(OutOfScope):
        require_grant(MOF_ADMIN, Role.REGISTRAR, MOH)
    with pytest.raises(Forbidden):
        require_grant(AUDITOR, Role.REGISTRAR, MOF)


def test_scoped_roles_need_an_agency_and_global_ones_refuse_one() -> None:
    with pytest.raises(ValueError):
        Actor("x@mof.example", Role.AGENCY_ADMIN)
    with pytest.raises(ValueError):
        Actor("x@mof.example", Role.SYSTEM_ADMIN, agency="MOF")
    assert Actor.local_cli().role is Role.SYSTEM_ADMIN
    assert Actor.local_cli().account.startswith("cli:")
