"""`barid init`, `barid serve`, `barid demo`, `barid audit verify|log|access`.

Owns: these commands' options and output. Must not: hold the logic of the
steps (admin.init, admin.demo, gateway.serve own it; the audit commands call
admin.services.audit as the local system administrator).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os

import click

from admin.cli import common, config_path, run, want_json
from admin.context import settings_from
from admin.errors import EXIT_USAGE, CliError
from admin.init import initialise
from admin.output import emit, table
from admin.service_call import call
from admin.services import audit as audit_service
from gateway import logs
from gateway.config import Settings
from gateway.serve import StartupError
from gateway.serve import run as serve_forever
from gateway.store.access_trail import AccessEntry, parse_since


def register(cli: click.Group) -> None:
    cli.add_command(init_cmd)
    cli.add_command(serve_cmd)
    cli.add_command(demo_cmd)
    cli.add_command(audit_group)


@click.command("init")
@common
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data directory (its barid.toml is created or used).")  # fmt: skip
@click.pass_context
def init_cmd(ctx: click.Context, data_dir: str | None) -> None:
    """Create the data directory, configuration, keys, TLS certificate and database."""
    report, _ = run(initialise(data_dir, config_path(ctx)))
    emit(report.as_dict(), report.text, as_json=want_json(ctx))


ALLOW_ROOT_ENV = "BARID_ALLOW_ROOT"


def running_as_root(allow_root: bool, *, euid: int | None = None) -> bool:
    """True when this process is root and may go on (--allow-root or BARID_ALLOW_ROOT=1);
    raises when it is root without that. A gateway needs no root: bind low ports
    with CAP_NET_BIND_SERVICE (deploy/barid.service) and run as its own user."""
    if (os.geteuid() if euid is None else euid) != 0:
        return False
    if allow_root or os.environ.get(ALLOW_ROOT_ENV) == "1":
        return True
    raise CliError(
        "refusing to run as root: run as the barid user (see deploy/barid.service),"
        f" or pass --allow-root (or set {ALLOW_ROOT_ENV}=1) if you really mean it"
    )


def _serve(settings: Settings) -> None:
    logs.configure(settings.server.log_level, settings.server.log_format)
    try:
        from admin.api.wiring import admin_app_for  # FastAPI loads only for `serve`

        asyncio.run(serve_forever(settings, admin_app_for))
    except StartupError as exc:
        raise CliError(str(exc)) from None


@click.command("serve")
@common
@click.option("--allow-root", is_flag=True,
              help=f"Run even as root (default: refuse; also {ALLOW_ROOT_ENV}=1).")  # fmt: skip
@click.pass_context
def serve_cmd(ctx: click.Context, allow_root: bool) -> None:
    """Run every listener until SIGTERM or SIGINT (refuses to run as root)."""
    running_as_root(allow_root)
    _serve(settings_from(config_path(ctx)))


@click.command("demo")
@common
@click.option("--data-dir", default="./barid-demo", show_default=True,
              type=click.Path(file_okay=False))  # fmt: skip
@click.option("--no-serve", is_flag=True, help="Set up and print, then exit.")
@click.pass_context
def demo_cmd(ctx: click.Context, data_dir: str, no_serve: bool) -> None:
    """Init plus a demo directory, keys and policy; then serve."""
    from admin.demo import build_demo
    from admin.demo_data import PEERS
    from admin.init import SHIPPED_POLICY

    report, settings = run(
        initialise(
            data_dir,
            None,
            config_overrides={"peers": {name: {"domains": d} for name, d in PEERS.items()}},
            policy_template=SHIPPED_POLICY,
        )
    )
    summary = run(build_demo(settings))
    emit({"init": report.as_dict(), **summary.as_dict()}, summary.text, as_json=want_json(ctx))
    if not no_serve:
        if os.geteuid() == 0:  # a throwaway demo machine: warn, do not refuse
            click.echo("warning: running the demo as root (`barid serve` refuses root)", err=True)
        click.echo("serving; stop with Ctrl-C", err=True)
        _serve(settings)


@click.group("audit")
def audit_group() -> None:
    """The audit trail."""


@audit_group.command("verify")
@common
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Check the whole audit chain: any changed or deleted event is reported."""
    result = call(ctx, audit_service.verify_chain).model_dump()
    if result["ok"]:
        emit(result, f"audit chain intact: {result['events']} events", as_json=want_json(ctx))
        return
    emit(result, "\n".join(result["problems"]), as_json=want_json(ctx))
    raise CliError(f"audit chain broken: {len(result['problems'])} problem(s)")


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
        lambda: table(rows, ["id", "at", "actor", "action", "target", "outcome"]),
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
