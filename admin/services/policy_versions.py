"""Use cases of the running routing policy: apply a new version, history, one version, diff.

Owns: validating a policy text against the directory and federation before it
becomes a version (nothing is written when it has a problem: every problem is
reported, with its line), and reading versions back. Every running node then
takes the new version (gateway.checks.policy). Failure behaviour:
`PolicyInvalid` (an `InvalidInput`) lists every problem; `Forbidden` for roles that may not change
the policy (only system-admin may); `VersionNotFound` (a `NotFound`) for an unknown id.
"""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass

from admin.context import App
from admin.services.actor import Actor, Area, require
from admin.services.errors import InvalidInput, NotFound
from gateway.store import policy_versions
from gateway.store.db import transaction
from gateway.store.directory import load_snapshot
from gateway.store.policy_versions import VersionInfo
from policies.loader import check_policy
from policies.problems import Problem, errors_in
from policies.render import problems_json, problems_text

MAX_POLICY_BYTES = 1024 * 1024


class PolicyInvalid(InvalidInput):
    """The text does not validate; nothing was applied. Every problem is listed
    (one line each, and as `details["problems"]` with file, line and rule)."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        super().__init__(
            f"the policy has {len(errors_in(problems))} problem(s); nothing applied",
            problems=[line for line in problems_text(problems).splitlines() if line.strip()],
            details={"problems": problems_json(problems)},
        )
        self.policy_problems = problems


class VersionNotFound(NotFound):
    pass


@dataclass(frozen=True)
class Applied:
    """`created` is False when the text was the running version's already: nothing
    was written and `version` is the running one (an identical retry is harmless)."""

    version: VersionInfo
    warnings: tuple[Problem, ...]
    created: bool = True


@dataclass(frozen=True)
class NamedVersion:
    """A version with its text and the name it was applied under (None if none)."""

    version: VersionInfo
    name: str | None


async def apply_policy(actor: Actor, app: App, policy_text: str, *, name: str) -> Applied:
    """Validate `policy_text`, then make it the newest version (one audit event).
    Text identical to the running version's writes nothing (`created` False)."""
    require(actor, Area.POLICY, write=True, agency_path=None)
    if len(policy_text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise PolicyInvalid((Problem(name, None, None, "larger than 1 MiB"),))
    async with app.sessions() as session:
        snapshot = await load_snapshot(session)
    result = await asyncio.to_thread(
        lambda: check_policy(policy_text, snapshot, app.settings.federation, name=name)
    )
    if not result.ok:
        raise PolicyInvalid(result.problems)
    async with transaction(app.sessions) as session:
        version = await policy_versions.add_version(
            session,
            app.audit_key,
            policy_text=policy_text,
            source=actor.channel,
            actor=actor.audit_name,
            role=actor.role.value,
            client=actor.client,
            details={"name": name},
            unless_running=True,
        )
        if version is None:
            running = await policy_versions.newest(session)
            assert running is not None
            return Applied(running, result.problems, created=False)
    return Applied(version, result.problems)


async def policy_history(
    actor: Actor, app: App, *, limit: int = 50, before: int | None = None
) -> list[VersionInfo]:
    require(actor, Area.POLICY, write=False, agency_path=None)
    async with app.sessions() as session:
        return await policy_versions.history(session, limit=limit, before=before)


async def policy_version(actor: Actor, app: App, version_id: int | None = None) -> VersionInfo:
    """One version with its text; the running (newest) one when no id is given."""
    require(actor, Area.POLICY, write=False, agency_path=None)
    async with app.sessions() as session:
        if version_id is None:
            found = await policy_versions.newest(session)
        else:
            found = await policy_versions.get(session, version_id)
    if found is None:
        raise VersionNotFound(f"no policy version {version_id}" if version_id else "no policy yet")
    return found


async def named_version(actor: Actor, app: App, version_id: int | None = None) -> NamedVersion:
    """`policy_version` with the name the version was applied under."""
    version = await policy_version(actor, app, version_id)
    async with app.sessions() as session:
        name = await policy_versions.applied_name(session, version.id)
    return NamedVersion(version, name)


async def policy_diff(actor: Actor, app: App, old_id: int, new_id: int) -> str:
    """A unified diff between two versions' texts."""
    old = await policy_version(actor, app, old_id)
    new = await policy_version(actor, app, new_id)
    lines = difflib.unified_diff(
        old.text.splitlines(keepends=True),
        new.text.splitlines(keepends=True),
        fromfile=f"version {old.id}",
        tofile=f"version {new.id}",
    )
    return "".join(lines)
