"""What every service function does before touching an object: find where it sits
in the agency tree, check the actor may act on it, and name the actor in audit events.

Owns: `check` (permission by agency path; an unknown object is reported to a scoped
actor exactly like one outside its scope), `actor_subtree`, `acting` (the role,
client and channel written into every audit event of the call) and the mapping of
directory refusals to service errors. Must not: read or change objects itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from admin.context import App
from admin.services.actor import SCOPED_ROLES, Actor, Area, require
from admin.services.errors import Conflict, InvalidInput, NotFound
from gateway.store import audit
from gateway.store.directory import DirectoryConflict, DirectoryError, DirectoryNotFound
from gateway.store.directory.scope import AgencyTree, load_tree


def check(
    actor: Actor,
    area: Area,
    *,
    write: bool,
    path: Sequence[str] | None,
    missing: NotFound | None = None,
) -> None:
    """Raise unless `actor` may act on the object at `path`.

    The role is checked first (`Forbidden`), then the place (`OutOfScope`).
    `missing` is raised when the object does not exist (path None) and the role
    may do this at all; a scoped actor gets `OutOfScope` instead, as for an object
    outside its subtree, so that the two cannot be told apart.
    """
    require(actor, area, write=write, agency_path=path)
    if path is None and missing is not None:
        raise missing


async def tree(app: App) -> AgencyTree:
    async with app.sessions() as session:
        return await load_tree(session)


def actor_subtree(actor: Actor, agencies: AgencyTree) -> frozenset[str] | None:
    """The agency codes a scoped actor may see; None for an unscoped actor (all)."""
    if actor.role not in SCOPED_ROLES or actor.agency is None:
        return None
    return agencies.subtree(actor.agency)


def home_path(actor: Actor, agencies: AgencyTree) -> tuple[str, ...] | None:
    """The path of the actor's own agency (None for unscoped actors): for list checks."""
    return agencies.path(actor.agency) if actor.agency else None


@contextmanager
def acting(actor: Actor) -> Iterator[None]:
    """Audit events written in this block name the actor's role, client and channel."""
    with audit.acting({"role": actor.role.value, "client": actor.client, "channel": actor.channel}):
        yield


@contextmanager
def directory_errors() -> Iterator[None]:
    """Directory refusals as service errors, with the same messages."""
    try:
        yield
    except DirectoryNotFound as exc:
        raise NotFound(str(exc)) from None
    except DirectoryConflict as exc:
        raise Conflict(str(exc)) from None
    except DirectoryError as exc:
        raise InvalidInput(str(exc), problems=[str(exc)]) from None
