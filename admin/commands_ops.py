"""`barid init`, `barid serve`, `barid demo`, `barid audit verify`.

Owns: these commands' options and output. Must not: hold the logic of the
steps (admin.init, admin.demo, gateway.serve, gateway.store.audit own it).
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.errors import CliError
from admin.init import initialise
from admin.output import emit, table
from gateway import logs
from gateway.config import Settings
from gateway.serve import StartupError
from gateway.serve import run as serve_forever
from gateway.store import audit


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


def _serve(settings: Settings) -> None:
    logs.configure(settings.server.log_level, settings.server.log_format)
    try:
        asyncio.run(serve_forever(settings))
    except StartupError as exc:
        raise CliError(str(exc)) from None


@click.command("serve")
@common
@click.pass_context
def serve_cmd(ctx: click.Context) -> None:
    """Run every listener until SIGTERM or SIGINT."""
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

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app, app.sessions() as session:
            report = await audit.verify(session, app.audit_key)
            return {"ok": report.ok, "events": report.events, "problems": report.problems}

    result = run(go())
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

    async def go() -> list[dict[str, Any]]:
        async with open_app(settings_from(config_path(ctx))) as app, app.sessions() as session:
            return await audit.recent(session, action=action, since=since, limit=limit)

    rows = run(go())
    emit(
        rows,
        lambda: table(rows, ["id", "at", "actor", "action", "target", "outcome"]),
        as_json=want_json(ctx),
    )
