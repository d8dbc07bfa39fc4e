"""Who acts on the management plane, and what their role lets them do (DESIGN §12).

Owns: the four role names, the `Actor` value every service function receives, and
the one permission rule (`require`). Pure: no I/O; the caller passes the agency
path of the object (its code and its ancestors' codes, root first) or None for
objects that belong to no agency (the policy, the audit chain, alerts).

Failure behaviour: `Forbidden` when the role may never do this (403), checked
first; `OutOfScope` when the object lies outside the actor's agency subtree
(the API answers 404, so scope does not reveal existence).
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    SYSTEM_ADMIN = "system-admin"
    AGENCY_ADMIN = "agency-admin"
    SECURITY_AUDITOR = "security-auditor"
    REGISTRAR = "registrar"


SCOPED_ROLES = frozenset({Role.AGENCY_ADMIN, Role.REGISTRAR})


class Area(StrEnum):
    """What an action touches; the permission table is written in these terms."""

    DIRECTORY = "directory"  # agencies, employees, identities, keys and certificates
    ACCOUNTS = "accounts"  # admin role grants and API tokens
    POLICY = "policy"
    MESSAGES = "messages"  # tracking by registry number, revocation
    QUEUE = "queue"
    AUDIT = "audit"
    ACCESS_TRAIL = "access-trail"
    ALERTS = "alerts"


class Forbidden(Exception):
    """The role may never do this (HTTP 403)."""


class OutOfScope(Exception):
    """The object lies outside the actor's agency subtree (HTTP 404)."""


@dataclass(frozen=True)
class Actor:
    """An authenticated administrator: recorded in every audit event they cause."""

    account: str  # the employee address, or "cli:<local user>"
    role: Role
    agency: str | None = None  # the subtree root for scoped roles
    client: str = "local"  # client address, or "local" for the CLI
    channel: str = "cli"  # cli | api | web

    def __post_init__(self) -> None:
        if self.role in SCOPED_ROLES and not self.agency:
            raise ValueError(f"role {self.role.value} needs an agency")
        if self.role not in SCOPED_ROLES and self.agency:
            raise ValueError(f"role {self.role.value} is not scoped to an agency")

    @classmethod
    def local_cli(cls) -> Actor:
        """The CLI on the gateway host acts as system-admin and names the local user."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(account=f"cli:{user}", role=Role.SYSTEM_ADMIN)

    @property
    def audit_name(self) -> str:
        """The `actor` string written into audit events."""
        return self.account


# Areas each role may read and write. Scoped roles act only inside their subtree,
# and only on objects that belong to an agency.
_READ: dict[Role, frozenset[Area]] = {
    Role.SYSTEM_ADMIN: frozenset(Area),
    Role.SECURITY_AUDITOR: frozenset(Area),
    Role.AGENCY_ADMIN: frozenset(
        {Area.DIRECTORY, Area.ACCOUNTS, Area.MESSAGES, Area.QUEUE, Area.AUDIT, Area.ACCESS_TRAIL}
    ),
    Role.REGISTRAR: frozenset({Area.MESSAGES}),
}
_WRITE: dict[Role, frozenset[Area]] = {
    Role.SYSTEM_ADMIN: frozenset(Area),
    Role.SECURITY_AUDITOR: frozenset({Area.ALERTS}),
    Role.AGENCY_ADMIN: frozenset({Area.DIRECTORY, Area.ACCOUNTS, Area.MESSAGES, Area.QUEUE}),
    Role.REGISTRAR: frozenset({Area.MESSAGES}),
}


def in_scope(actor: Actor, agency_path: Sequence[str] | None) -> bool:
    """True when the object (by its agency path, root first) is in the actor's subtree."""
    if actor.role not in SCOPED_ROLES:
        return True
    return agency_path is not None and actor.agency in agency_path


def may(actor: Actor, area: Area, *, write: bool, agency_path: Sequence[str] | None) -> bool:
    table = _WRITE if write else _READ
    return area in table[actor.role] and in_scope(actor, agency_path)


def require(actor: Actor, area: Area, *, write: bool, agency_path: Sequence[str] | None) -> None:
    """Raise unless `actor` may read (or write) `area` for this object.

    The role is checked first (`Forbidden`: a fact about the role, which reveals
    nothing about objects); then, for scoped roles, the object's place: outside
    the subtree, or belonging to no agency, is `OutOfScope`, so its existence is
    not revealed.
    """
    table = _WRITE if write else _READ
    if area not in table[actor.role]:
        verb = "change" if write else "read"
        raise Forbidden(f"role {actor.role.value} may not {verb} {area.value}")
    if not in_scope(actor, agency_path):
        raise OutOfScope("not found")


_RANK = {Role.REGISTRAR: 1, Role.AGENCY_ADMIN: 2, Role.SECURITY_AUDITOR: 2, Role.SYSTEM_ADMIN: 3}


def require_grant(actor: Actor, role: Role, agency_path: Sequence[str] | None) -> None:
    """May `actor` grant (or revoke) `role` at the agency whose path is given?

    A system-admin grants anything. An agency-admin grants only scoped roles
    (agency-admin, registrar) inside its own subtree, never a role above its own:
    the role is checked first (`Forbidden`, a fact about roles), then the place.
    """
    if actor.role is not Role.SYSTEM_ADMIN and (
        role not in SCOPED_ROLES or _RANK[role] > _RANK[actor.role]
    ):
        raise Forbidden(f"role {actor.role.value} may not grant {role.value}")
    require(actor, Area.ACCOUNTS, write=True, agency_path=agency_path)
