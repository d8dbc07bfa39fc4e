"""`barid policy check | explain | test | reload`.

Owns: these commands' options and output. Must not: evaluate rules itself;
`policies/` validates, decides and renders; `reload` signals the running
gateway, which applies the file and records it in the audit trail.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import click

from admin.cli import common, config_path, run, want_json
from admin.context import App, open_app, settings_from
from admin.errors import CliError
from admin.output import emit
from gateway.serve import PID_FILE
from gateway.store import audit
from gateway.store.db import transaction
from policies.cases import run_cases
from policies.decision import MessageFacts
from policies.directory import Clearance, DirectorySnapshot
from policies.explain import explain
from policies.loader import PolicyCheck, check_policy
from policies.render import (
    case_report_json,
    case_report_text,
    explanation_json,
    explanation_text,
    problems_json,
    problems_text,
)


def register(cli: click.Group) -> None:
    cli.add_command(policy)


@click.group()
def policy() -> None:
    """Routing policies: who may address whom."""


def _check(path: Path, app: App, snapshot: DirectorySnapshot) -> PolicyCheck:
    if not path.exists():
        raise CliError(f"{path}: no such policy file")
    return check_policy(path, snapshot, app.settings.federation)


def _problem_lines(result: PolicyCheck) -> list[str]:
    return [line for line in problems_text(result.problems).splitlines() if line.strip()]


@policy.command("check")
@common
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.pass_context
def policy_check(ctx: click.Context, policy_file: str) -> None:
    """Validate FILE against the directory; print every problem with file and line."""

    async def go() -> PolicyCheck:
        async with open_app(settings_from(config_path(ctx))) as app:
            return _check(Path(policy_file), app, await app.directory.snapshot())

    result = run(go())
    data = {
        "ok": result.ok,
        "file": policy_file,
        "sha256": result.source_hash,
        "problems": problems_json(result.problems),
    }
    if result.ok:
        note = f" ({len(result.problems)} warning(s))" if result.problems else ""
        emit(
            data,
            f"{policy_file}: OK{note}\n" + problems_text(result.problems),
            as_json=want_json(ctx),
        )
        return
    if not want_json(ctx):
        for line in _problem_lines(result):
            click.echo(line, err=True)
    raise CliError(
        f"{policy_file}: {len(result.errors)} problem(s); policy not valid",
        details={k: v for k, v in data.items() if k != "ok"},
    )


@policy.command("explain")
@common
@click.argument("sender")
@click.argument("recipient")
@click.option("--classification", default=None, help="public|internal|confidential|secret")
@click.option("--size", type=int, default=None, help="Message size in bytes.")
@click.option(
    "--recipients", "recipient_count", type=int, default=None, help="Recipients in the message."
)
@click.option("--policy-file", default=None, type=click.Path(dir_okay=False),
              help="Explain with this file instead of the configured one.")  # fmt: skip
@click.pass_context
def policy_explain(
    ctx: click.Context,
    sender: str,
    recipient: str,
    classification: str | None,
    size: int | None,
    recipient_count: int | None,
    policy_file: str | None,
) -> None:
    """Show the decision for SENDER -> RECIPIENT and the trace of rules considered."""
    try:
        level = Clearance.parse(classification) if classification else None
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    facts = MessageFacts(classification=level, size=size, recipient_count=recipient_count)

    async def go() -> Any:
        async with open_app(settings_from(config_path(ctx))) as app:
            path = Path(policy_file) if policy_file else app.settings.policy_file
            result = _check(path, app, await app.directory.snapshot())
            if result.policy is None:
                raise CliError(f"{path}: policy not valid; run `barid policy check {path}`")
            return explain(result.policy, sender, recipient, facts)

    explanation = run(go())
    emit(explanation_json(explanation), explanation_text(explanation), as_json=want_json(ctx))


@policy.command("test")
@common
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.argument("cases_file", type=click.Path(dir_okay=False))
@click.pass_context
def policy_test(ctx: click.Context, policy_file: str, cases_file: str) -> None:
    """Run a table of expected decisions (CASES) against FILE; fail with a diff."""
    if not Path(cases_file).exists():
        raise CliError(f"{cases_file}: no such cases file")

    async def go() -> Any:
        async with open_app(settings_from(config_path(ctx))) as app:
            result = _check(Path(policy_file), app, await app.directory.snapshot())
            if result.policy is None:
                if not want_json(ctx):
                    for line in _problem_lines(result):
                        click.echo(line, err=True)
                raise CliError(f"{policy_file}: policy not valid")
            return run_cases(result.policy, Path(cases_file))

    report = run(go())
    if report.ok:
        emit(case_report_json(report), case_report_text(report), as_json=want_json(ctx))
        return
    if not want_json(ctx):
        click.echo(case_report_text(report))
    raise CliError(
        f"{cases_file}: {len(report.failures)} case(s) failed"
        + (f", {len(report.problems)} problem(s)" if report.problems else ""),
        details={"report": case_report_json(report)},
    )


@policy.command("reload")
@common
@click.pass_context
def policy_reload(ctx: click.Context) -> None:
    """Validate the configured policy file and ask the running gateway to apply it."""

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            path = app.settings.policy_file
            result = _check(path, app, await app.directory.snapshot())
            actor = f"cli:{os.environ.get('USER') or os.getuid()}"
            async with transaction(app.sessions) as session:
                await audit.append(
                    session,
                    app.audit_key,
                    actor=actor,
                    action="policy.reload-request",
                    target=str(path),
                    outcome="ok" if result.ok else "refused",
                    details={"sha256": result.source_hash, "problems": len(result.errors)},
                )
            if not result.ok:
                if not want_json(ctx):
                    for line in _problem_lines(result):
                        click.echo(line, err=True)
                raise CliError(
                    f"{path}: {len(result.errors)} problem(s); the running policy stays",
                    details={"problems": problems_json(result.problems)},
                )
            pid = signal_gateway(app.settings.data_dir / PID_FILE)
            return {"ok": True, "file": str(path), "sha256": result.source_hash, "signalled": pid}

    data = run(go())
    if data["signalled"]:
        text = f"policy valid; gateway (pid {data['signalled']}) is applying it"
    else:
        text = "policy valid; no running gateway found, it will be used at the next start"
    emit(data, text, as_json=want_json(ctx))


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
        raise CliError(f"not allowed to signal the gateway (pid {pid}); run as its user") from None
    return pid
