"""`barid audit verify|checkpoint|export|log|access`: the audit trail's commands.

Owns: these commands' options and output. Must not: hold logic; they call
admin.services.audit and admin.services.audit_archive as the local system
administrator (`verify --archive` needs no configuration, database or key).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from admin.cli import common, want_json
from admin.errors import EXIT_USAGE, CliError
from admin.output import emit, table
from admin.service_call import call
from admin.services import audit as audit_service
from admin.services import audit_archive
from gateway.store.access_trail import AccessEntry, parse_since


def register(cli: click.Group) -> None:
    cli.add_command(audit_group)


@click.group("audit")
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
@common
@click.option(
    "--archive",
    "archive",
    default=None,
    type=click.Path(file_okay=False),
    help="Check an exported archive offline (no database, no master key) instead.",
)
@click.option(
    "--keys",
    "trusted_keys",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="With --archive: trust these public keys (a copy of the gateway's published"
    " /.well-known/barid/keys.json) instead of the archive's own keys.json.",
)
@click.pass_context
def audit_verify(ctx: click.Context, archive: str | None, trusted_keys: str | None) -> None:
    """Check the whole audit chain, its sealed head and its signed checkpoints (or,
    with --archive, an exported archive): any changed or deleted event is reported."""
    if archive is None:
        if trusted_keys is not None:
            raise CliError("--keys goes with --archive", EXIT_USAGE)
        result = call(ctx, audit_service.verify_chain).model_dump()
        text = (
            f"audit chain intact: {result['events']} events, {result['checkpoints']}"
            f" signed checkpoint(s), head {'sealed' if result['head_sealed'] else 'not sealed yet'}"
            + (f", {result['staged']} staged (not chained yet)" if result["staged"] else "")
        )
        _verdict(ctx, result, text, "audit chain broken")
        return
    checked = audit_archive.verify_archive(archive, trusted_keys=trusted_keys).model_dump()
    text = "\n".join(
        [
            f"audit archive intact: events {checked['first_event']}..{checked['end_event']}"
            f" ({checked['events']} events), {checked['checkpoints']} signed checkpoint(s)",
            f"signed by key(s) {', '.join(checked['key_ids'])} (keys from {checked['keys_from']};"
            " compare with the gateway's /.well-known/barid/keys.json)",
            f"checked: manifest signature and hashes, checkpoint signatures, prev_mac"
            f" links, checkpointed MACs, no event missing up to the signed end; {checked['note']}",
        ]
    )
    _verdict(ctx, checked, text, "audit archive broken")


def _verdict(ctx: click.Context, result: dict[str, Any], text: str, broken: str) -> None:
    """Intact: the report, exit 0. Broken: the problems (text) and a one-line reason."""
    if result["ok"]:
        emit(result, text, as_json=want_json(ctx))
        return
    problems = result["problems"]
    if not want_json(ctx):
        click.echo("\n".join(problems))
    reason = f"{broken}: {len(problems)} problem(s); first: {problems[0]}"
    raise CliError(reason, details={k: v for k, v in result.items() if k != "ok"})


@audit_group.command("checkpoint")
@common
@click.pass_context
def audit_checkpoint(ctx: click.Context) -> None:
    """Sign a checkpoint of the audit chain now (the gateway also signs them
    periodically: [audit] checkpoint_every_events, checkpoint_every_minutes)."""
    facts = call(ctx, audit_service.checkpoint).model_dump()
    text = (
        f"checkpoint signed at event {facts['event_id']} ({facts['count']} events)"
        f" by key {facts['key_id']} on {facts['node']}"
    )
    emit(facts, text, as_json=want_json(ctx))


@audit_group.command("export")
@common
@click.option(
    "--since",
    required=True,
    help="Events at or after this time: an ISO 8601 date or date-time, or a span back"
    " such as 7d (the archive starts at the signed checkpoint before it).",
)
@click.argument("dest", type=click.Path(file_okay=False))
@click.pass_context
def audit_export(ctx: click.Context, since: str, dest: str) -> None:
    """Write a signed archive of the audit trail to DEST (a new or empty directory):
    events, checkpoints, public keys and a signed manifest; check it anywhere with
    `barid audit verify --archive DEST`."""
    try:
        parse_since(since, dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise CliError(f"--since: {exc}", EXIT_USAGE) from None
    report = call(
        ctx, lambda actor, app: audit_archive.export_archive(actor, app, since, dest)
    ).model_dump()
    text = (
        f"audit archive written to {report['path']}: events {report['first_event']}.."
        f"{report['end_event']} ({report['events']} events), {report['checkpoints']} signed"
        f" checkpoint(s), manifest signed by key {report['key_id']}"
    )
    emit(report, text, as_json=want_json(ctx))


@audit_group.command("log")
@common
@click.option("--action", default=None, help="Only this action, e.g. policy.apply or employee.add.")
@click.option("--since", default=None, help="Only events at or after this UTC time (ISO 8601).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_context
def audit_log(ctx: click.Context, action: str | None, since: str | None, limit: int) -> None:
    """Show the newest audit events (newest last)."""
    query = audit_service.AuditQuery(action=action, since=since, limit=limit)
    found = call(ctx, lambda actor, app: audit_service.query_events(actor, app, query))
    rows = [event.model_dump() for event in found]
    emit(
        rows,
        lambda: table(rows, ["id", "at", "node", "actor", "action", "target", "outcome"]),
        as_json=want_json(ctx),
    )


def _access_lines(entries: list[AccessEntry], limit: int) -> str:
    if not entries:
        return "no accesses recorded"
    rows = [
        [
            e.at[:19] + "Z" if len(e.at) > 19 else e.at,  # to the second
            e.employee,
            e.registry,
            f"trace={e.trace}" if e.trace is not None else f"trace=- ({e.copy or '?'} copy)",
            f"{e.protocol or '-'} {e.client or '-'}",
            f"{e.mailbox or '-'} uid={'-' if e.uid is None else e.uid}",
            f"node={e.node or '-'}",
            " ".join(e.items) or "-",
        ]
        for e in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]) for r in rows
    ]
    count = f"{len(entries)} access{'' if len(entries) == 1 else 'es'}"
    if len(entries) == limit:
        count += f" (the newest {limit}; raise --limit to see older ones)"
    return "\n".join([*lines, count])


def _filter_value(name: str, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise CliError(f"{name} must not be empty", EXIT_USAGE)
    return value


@audit_group.command("access")
@common
@click.option(
    "--registry",
    default=None,
    help="Only this official message, by registry number (e.g. MOH/2026/000042).",
)
@click.option(
    "--employee", default=None, help="Only fetches by this employee address (any letter case)."
)
@click.option(
    "--trace",
    default=None,
    help="Only fetches of the recipient copy with this trace code (e.g. 7Q4MZ-K2D9X).",
)
@click.option(
    "--since",
    default=None,
    help="Only fetches at or after this time: an ISO 8601 date or date-time"
    " (UTC unless an offset is given, e.g. 2026-11-22 or 2026-11-22T10:00:00Z)"
    " or a span back from now: 30m, 24h, 7d, 2w.",
)
@click.option(
    "--limit",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Show at most this many (the newest).",
)
@click.pass_context
def audit_access(
    ctx: click.Context,
    registry: str | None,
    employee: str | None,
    trace: str | None,
    since: str | None,
    limit: int,
) -> None:
    """Who read which official message: every body fetch over IMAP, oldest first.

    Each line is one fetch recorded in the audit chain: time (UTC), employee,
    registry number, the copy's trace code (none for the sender's own Sent copy),
    protocol and client address, mailbox and UID, and the fetched items.
    Filters combine; --json prints a list of objects.
    """
    registry = _filter_value("--registry", registry)
    employee = _filter_value("--employee", employee)
    trace = _filter_value("--trace", trace)
    if since is not None:
        try:
            parse_since(since, dt.datetime.now(dt.UTC))
        except ValueError as exc:
            raise CliError(f"--since: {exc}", EXIT_USAGE) from None
    query = audit_service.AccessQuery(
        registry=registry, employee=employee, trace=trace, since=since, limit=limit
    )
    entries = call(ctx, lambda actor, app: audit_service.access_trail(actor, app, query))
    emit(
        [e.as_dict() for e in entries],
        lambda: _access_lines(entries, limit),
        as_json=want_json(ctx),
    )
