"""The `barid` command: groups, shared options, and the error boundary.

Owns: option parsing and turning every failure into `barid: <reason>` with a
non-zero exit (2 for usage and configuration errors). Must not: hold command
logic; each command group lives in its own module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from admin.errors import EXIT_FAILURE, EXIT_USAGE, CliError
from admin.output import error

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value:
            ctx.find_root().ensure_object(dict)[key] = value
        return value

    return callback


def common(func: F) -> F:
    """--json and --config on every command (they may also come before the group)."""
    func = click.option(
        "--json",
        "json_flag",
        is_flag=True,
        expose_value=False,
        callback=_remember("json"),
        help="Machine-readable output.",
    )(func)
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=_remember("config"),
        help="Configuration file (default: $BARID_CONFIG).",
    )(func)
    return func


def want_json(ctx: click.Context) -> bool:
    return bool(ctx.find_root().ensure_object(dict).get("json"))


def config_path(ctx: click.Context) -> str | None:
    value = ctx.find_root().ensure_object(dict).get("config")
    return str(value) if value else None


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common
@click.version_option(package_name="barid")
def cli() -> None:
    """Barid: official mail for government agencies.

    Every command takes --json and --config FILE (or $BARID_CONFIG).
    """


def _register() -> None:
    from admin import (
        commands_admin,
        commands_alerts,
        commands_audit,
        commands_backup,
        commands_blobs,
        commands_cluster,
        commands_directory,
        commands_dns,
        commands_keys,
        commands_leak,
        commands_ops,
        commands_peer,
        commands_policy,
        commands_queue,
        commands_verify,
    )

    commands_ops.register(cli)
    commands_audit.register(cli)
    commands_alerts.register(cli)
    commands_leak.register(cli)
    commands_backup.register(cli)
    commands_directory.register(cli)
    commands_policy.register(cli)
    commands_keys.register(cli)
    commands_dns.register(cli)
    commands_verify.register(cli)
    commands_queue.register(cli)
    commands_peer.register(cli)
    commands_admin.register(cli)
    commands_blobs.register(cli)
    commands_cluster.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI behind an error boundary."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register()
    try:
        cli.main(args=args, prog_name="barid", standalone_mode=False)
    except CliError as exc:
        error(str(exc), as_json=as_json, details=exc.details)
        sys.exit(exc.status)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        error("aborted", as_json=as_json)
        sys.exit(EXIT_FAILURE)
    except click.ClickException as exc:
        error(exc.format_message(), as_json=as_json)
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else EXIT_FAILURE)
    except KeyboardInterrupt:
        error("interrupted", as_json=as_json)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("BARID_DEBUG"):
            raise
        logging.getLogger("barid").debug("internal error", exc_info=True)
        error(
            f"internal error ({type(exc).__name__}); set BARID_DEBUG=1 for details",
            as_json=as_json,
        )
        sys.exit(EXIT_FAILURE)
