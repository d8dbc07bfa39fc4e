"""Directory import: agencies and employees from CSV, every row or none.

Owns: the import use case: check every row (all problems reported together,
nothing imported; a scoped actor's rows are checked against its subtree only, so
an agency outside reads as unknown), keep a scoped actor's rows inside its
subtree, then hand the plan to the store with a progress callback. Must not: parse CSV itself
(admin.directory_import does) or print anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pydantic import Field

from admin.context import App
from admin.directory_import import ImportPlan, plan_import, read_rows
from admin.services.actor import Actor, Area, OutOfScope
from admin.services.errors import Conflict, InvalidInput
from admin.services.model import Frozen
from admin.services.scope import acting, actor_subtree, check, home_path, tree
from gateway.store.directory import DirectoryConflict, DirectoryError
from policies.directory import DirectorySnapshot

# Called once with the number of rows to import; returns the function to call
# with each batch of rows done.
Progress = Callable[[int], Callable[[int], None]]


class DirectoryImport(Frozen):
    data: bytes = Field(repr=False)  # the CSV file's bytes
    source: str = "import"  # named in messages (e.g. the file name)
    dry_run: bool = False


class IssuedCode(Frozen):
    address: str
    code: str


class ImportResult(Frozen):
    agencies: int
    employees: int
    dry_run: bool
    issued: list[IssuedCode]


def _within(snapshot: DirectorySnapshot, subtree: frozenset[str]) -> DirectorySnapshot:
    """The directory as a scoped actor sees it: its subtree only (its root as a root),
    so a row naming an agency outside reads "unknown" whether that agency exists."""
    agencies = [
        a if a.parent in subtree else replace(a, parent=None)
        for code, a in snapshot.agencies.items()
        if code in subtree
    ]
    staff = [e for e in snapshot.employees.values() if e.agency in subtree]
    return DirectorySnapshot.build(agencies, staff)


def _refuse_outside(plan: ImportPlan, subtree: frozenset[str]) -> None:
    """Every new agency hangs below the subtree and every employee joins an agency in it."""
    allowed = set(subtree)
    for agency in plan.agencies:  # parents first
        if agency.parent is None or agency.parent.strip().upper() not in allowed:
            raise OutOfScope("not found")
        allowed.add(agency.code.strip().upper())
    if any(person.agency.strip().upper() not in allowed for person in plan.employees):
        raise OutOfScope("not found")


async def check_import(actor: Actor, app: App, data: DirectoryImport) -> ImportPlan:
    """Check every row (all problems in one `InvalidInput`, line-numbered) and the
    actor's scope; the plan to import. Changes nothing."""
    agencies = await tree(app)
    check(actor, Area.DIRECTORY, write=True, path=home_path(actor, agencies))
    rows, problems = read_rows(data.data)
    subtree = actor_subtree(actor, agencies)
    snapshot = await app.directory.snapshot()
    plan = plan_import(rows, snapshot if subtree is None else _within(snapshot, subtree))
    found = problems + plan.problems
    if found:
        raise InvalidInput(
            f"{data.source}: {len(found)} bad row(s); nothing imported",
            problems=[f"{data.source}: {line}" for line in found],
            details={"problems": found},
        )
    if subtree is not None:
        _refuse_outside(plan, subtree)
    return plan


async def import_directory(
    actor: Actor, app: App, data: DirectoryImport, progress: Progress | None = None
) -> ImportResult:
    """Check every row, then import all of them in one audited transaction (or none)."""
    plan = await check_import(actor, app, data)
    update = progress(len(plan.agencies) + len(plan.employees)) if progress else None
    try:
        with acting(actor):
            result = await app.directory.import_rows(
                plan.agencies, plan.employees, actor=actor.audit_name, dry_run=data.dry_run,
                progress=update,
            )  # fmt: skip
    except DirectoryError as exc:
        message = f"{data.source}: {exc}; nothing imported"
        kind = Conflict if isinstance(exc, DirectoryConflict) else InvalidInput
        raise kind(message, problems=[message]) from None
    return ImportResult(**result)
