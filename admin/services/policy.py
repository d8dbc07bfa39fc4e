"""Policy use cases: check a policy, explain a decision, run a case table, reload.

Owns: one function per use case, each taking the `Actor` first; the policy is
global (no agency), so scoped roles never reach it. `reload` records the request
in the audit trail (refused or not) and signals the running gateway, which
applies the file. Must not: evaluate rules itself (policies/ validates, decides
and renders) or print anything.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from admin.context import App
from admin.services.actor import Actor, Area
from admin.services.errors import InvalidInput, NotFound, Unavailable
from admin.services.model import Frozen
from admin.services.scope import acting, check
from gateway.serve import PID_FILE
from gateway.store import audit, policy_versions
from gateway.store.db import transaction
from policies.cases import CaseReport, run_cases
from policies.decision import MessageFacts
from policies.directory import Clearance
from policies.engine import Policy
from policies.explain import Explanation, explain
from policies.loader import PolicyCheck, check_policy
from policies.problems import Problem
from policies.render import problems_json, problems_text


class PolicySource(Frozen):
    """A policy (or cases) file on the gateway host, or its text (e.g. an upload)."""

    path: str | None = None
    text: str | None = None
    name: str | None = None  # the label in problems for text ("<text>" when None)

    @property
    def label(self) -> str:
        return self.path if self.path is not None else (self.name or "<text>")


class ExplainQuery(Frozen):
    sender: str
    recipient: str
    classification: str | None = None
    size: int | None = None
    recipient_count: int | None = None
    policy: PolicySource | None = None  # None: the running policy (see running_source)


class CaseRun(Frozen):
    policy: PolicySource | None  # None: the running policy (see running_source)
    cases: PolicySource


@dataclass(frozen=True)
class PolicyCheckResult:
    ok: bool
    file: str
    sha256: str
    problems: tuple[Problem, ...]
    errors: int

    def problems_json(self) -> list[dict[str, object]]:
        return problems_json(self.problems)


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    file: str
    sha256: str
    signalled: int | None  # the gateway's pid, None when none is running


def problem_lines(problems: tuple[Problem, ...]) -> list[str]:
    return [line for line in problems_text(problems).splitlines() if line.strip()]


def _existing(name: str, what: str) -> Path:
    path = Path(name)
    if not path.exists():
        raise NotFound(f"{name}: no such {what} file")
    return path


async def _check(app: App, source: PolicySource, what: str = "policy") -> PolicyCheck:
    snapshot = await app.directory.snapshot()
    federation = app.settings.federation
    if source.path is not None:
        return check_policy(_existing(source.path, what), snapshot, federation)
    return check_policy(source.text or "", snapshot, federation, name=source.name)


async def running_source(app: App) -> PolicySource:
    """The running policy: the newest version in the database, or the configured
    file while no version was written yet."""
    async with app.sessions() as session:
        newest = await policy_versions.newest(session)
    if newest is None:
        return PolicySource(path=str(app.settings.policy_file))
    return PolicySource(text=newest.text, name=f"version {newest.id}")


async def check_source(actor: Actor, app: App, source: PolicySource) -> PolicyCheckResult:
    """Validate a policy against the directory: every problem with file and line."""
    check(actor, Area.POLICY, write=False, path=None)
    result = await _check(app, source)
    return PolicyCheckResult(
        result.ok, source.label, result.source_hash, result.problems, len(result.errors)
    )


async def _valid(app: App, source: PolicySource) -> Policy:
    result = await _check(app, source)
    if result.policy is None:
        raise InvalidInput(
            f"{source.label}: policy not valid", problems=problem_lines(result.problems)
        )
    return result.policy


async def explain_decision(actor: Actor, app: App, query: ExplainQuery) -> Explanation:
    """The decision for sender -> recipient and the trace of rules considered."""
    check(actor, Area.POLICY, write=False, path=None)
    try:
        level = Clearance.parse(query.classification) if query.classification else None
    except ValueError as exc:
        raise InvalidInput(str(exc), problems=[str(exc)]) from None
    facts = MessageFacts(
        classification=level, size=query.size, recipient_count=query.recipient_count
    )
    source = query.policy or await running_source(app)
    result = await _check(app, source)
    if result.policy is None:
        raise InvalidInput(
            f"{source.label}: policy not valid; run `barid policy check {source.label}`"
        )
    return explain(result.policy, query.sender, query.recipient, facts)


async def run_case_table(actor: Actor, app: App, run: CaseRun) -> CaseReport:
    """Run a table of expected decisions against a policy (failures are in the report)."""
    check(actor, Area.POLICY, write=False, path=None)
    cases = _existing(run.cases.path, "cases") if run.cases.path is not None else None
    policy = await _valid(app, run.policy or await running_source(app))
    if cases is not None:
        return run_cases(policy, cases)
    return run_cases(policy, run.cases.text or "", name=run.cases.name)


async def reload_policy(actor: Actor, app: App) -> ReloadResult:
    """Validate the configured policy file, record the request, signal the gateway."""
    check(actor, Area.POLICY, write=True, path=None)
    path = app.settings.policy_file
    result = await _check(app, PolicySource(path=str(path)))
    with acting(actor):
        async with transaction(app.sessions) as session:
            await audit.append(
                session,
                app.audit_key,
                actor=actor.audit_name,
                action="policy.reload-request",
                target=str(path),
                outcome="ok" if result.ok else "refused",
                details={"sha256": result.source_hash, "problems": len(result.errors)},
            )
    if not result.ok:
        raise InvalidInput(
            f"{path}: {len(result.errors)} problem(s); the running policy stays",
            problems=problem_lines(result.problems),
            details={"problems": problems_json(result.problems)},
        )
    pid = signal_gateway(app.settings.data_dir / PID_FILE)
    return ReloadResult(ok=True, file=str(path), sha256=result.source_hash, signalled=pid)


def signal_gateway(pid_file: Path) -> int | None:
    """Send SIGHUP to the gateway named in `pid_file`; None when none is running."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return None
    except PermissionError:
        raise Unavailable(
            f"not allowed to signal the gateway (pid {pid}); run as its user"
        ) from None
    return pid
