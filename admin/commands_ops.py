"""`barid init`, `barid serve`, `barid demo`.

Owns: these commands' options and output. Must not: hold the logic of the
steps (admin.init, admin.demo, gateway.serve own it).
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import click

from admin.cli import common, config_path, run, want_json
from admin.context import settings_from
from admin.errors import CliError
from admin.init import initialise
from admin.output import emit
from gateway import logs
from gateway.config import Settings
from gateway.serve import StartupError
from gateway.serve import run as serve_forever


def register(cli: click.Group) -> None:
    cli.add_command(init_cmd)
    cli.add_command(serve_cmd)
    cli.add_command(demo_cmd)


@click.command("init")
@common
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data directory (its barid.toml is created or used).")  # fmt: skip
@click.option(
    "--join",
    "join_bundle",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Join a cluster: make the node from this key bundle (barid cluster export-keys).",
)
@click.option("--database-url", default=None, help="With --join: the cluster's database.")
@click.option("--node-id", default=None, help="With --join: this node's name (default: host name).")
@click.option("--passphrase-file", default=None, type=click.Path(dir_okay=False, exists=True),
              help="With --join: passphrase file (default: first line of stdin).")  # fmt: skip
@click.pass_context
def init_cmd(
    ctx: click.Context,
    data_dir: str | None,
    join_bundle: str | None,
    database_url: str | None,
    node_id: str | None,
    passphrase_file: str | None,
) -> None:
    """Create the data directory, configuration, keys, TLS certificate and database;
    with --join, a new node of an existing cluster from its key bundle."""
    if join_bundle is not None:
        if not data_dir or not database_url:
            raise CliError("--join needs --data-dir and --database-url", 2)
        from admin.cluster_join import join, read_passphrase

        passphrase = read_passphrase(passphrase_file)
        node = node_id or socket.gethostname()
        report = run(join(Path(join_bundle), passphrase, database_url=database_url,
                          data_dir=Path(data_dir), node_id=node))  # fmt: skip
    elif database_url or node_id or passphrase_file:
        raise CliError("--database-url, --node-id and --passphrase-file go with --join", 2)
    else:
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
    server = settings.server
    logs.configure(server.log_level, server.log_format, logs.node_name(server.node_id))
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
