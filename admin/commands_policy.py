"""`barid policy check | explain | test | reload | apply | hits`.

Owns: these commands' options and output. Must not: hold the use cases; each
command calls one function of admin.services.policy (`hits`: of
admin.services.audit) as the local system administrator (`policies/`
validates, decides and renders).
"""

from __future__ import annotations

from pathlib import Path

import click

from admin.cli import common, want_json
from admin.errors import CliError
from admin.output import emit, table
from admin.service_call import call
from admin.services import audit as audit_service
from admin.services import policy as service
from admin.services.policy import signal_gateway
from admin.services.policy_versions import apply_policy
from policies.directory import Clearance
from policies.render import (
    case_report_json,
    case_report_text,
    explanation_json,
    explanation_text,
    problems_text,
)

__all__ = ["register", "signal_gateway"]


def register(cli: click.Group) -> None:
    cli.add_command(policy)


@click.group()
def policy() -> None:
    """Routing policies: who may address whom."""


@policy.command("check")
@common
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.pass_context
def policy_check(ctx: click.Context, policy_file: str) -> None:
    """Validate FILE against the directory; print every problem with file and line."""
    source = service.PolicySource(path=policy_file)
    result = call(ctx, lambda actor, app: service.check_source(actor, app, source))
    data = {
        "ok": result.ok,
        "file": policy_file,
        "sha256": result.sha256,
        "problems": result.problems_json(),
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
        for line in service.problem_lines(result.problems):
            click.echo(line, err=True)
    raise CliError(
        f"{policy_file}: {result.errors} problem(s); policy not valid",
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
    query = service.ExplainQuery(
        sender=sender,
        recipient=recipient,
        classification=level.label if level is not None else None,
        size=size,
        recipient_count=recipient_count,
        policy=service.PolicySource(path=policy_file) if policy_file else None,
    )
    explanation = call(ctx, lambda actor, app: service.explain_decision(actor, app, query))
    emit(explanation_json(explanation), explanation_text(explanation), as_json=want_json(ctx))


@policy.command("test")
@common
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.argument("cases_file", type=click.Path(dir_okay=False))
@click.pass_context
def policy_test(ctx: click.Context, policy_file: str, cases_file: str) -> None:
    """Run a table of expected decisions (CASES) against FILE; fail with a diff."""
    run = service.CaseRun(
        policy=service.PolicySource(path=policy_file), cases=service.PolicySource(path=cases_file)
    )
    report = call(ctx, lambda actor, app: service.run_case_table(actor, app, run))
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
    result = call(ctx, service.reload_policy)
    data = {
        "ok": result.ok,
        "file": result.file,
        "sha256": result.sha256,
        "signalled": result.signalled,
    }
    if data["signalled"]:
        text = f"policy valid; gateway (pid {data['signalled']}) is applying it"
    else:
        text = "policy valid; no running gateway found, it will be used at the next start"
    emit(data, text, as_json=want_json(ctx))


@policy.command("apply")
@common
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.pass_context
def policy_apply(ctx: click.Context, policy_file: str) -> None:
    """Validate FILE, then make it the running policy of every node (a new version)."""
    try:
        text = Path(policy_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{policy_file}: cannot read ({type(exc).__name__})") from None
    applied = call(ctx, lambda actor, app: apply_policy(actor, app, text, name=policy_file))
    version = applied.version
    if not applied.created:
        text = f"policy unchanged: it is the running version {version.id} already"
    else:
        text = (
            f"policy version {version.id} applied (sha256 {version.sha256[:16]}...);"
            " every running node takes it within seconds"
        )
    emit(
        {"applied": applied.created, "version": version.id, "sha256": version.sha256},
        text,
        as_json=want_json(ctx),
    )


@policy.command("hits")
@common
@click.option("--rule", default=None, help="Only matches of this rule id.")
@click.option(
    "--since", default=None, help="Only matches at or after this time (ISO 8601, or 24h, 7d)."
)
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_context
def policy_hits(ctx: click.Context, rule: str | None, since: str | None, limit: int) -> None:
    """List audit-mode rule matches recorded at submission (oldest first)."""
    query = audit_service.PolicyHitQuery(rule=rule, since=since, limit=limit)
    found = call(ctx, lambda actor, app: audit_service.policy_hits(actor, app, query))
    rows = [hit.model_dump() for hit in found]
    columns = ["at", "rule", "sender", "recipient", "registry", "outcome"]
    emit(rows, lambda: table(rows, columns), as_json=want_json(ctx))
