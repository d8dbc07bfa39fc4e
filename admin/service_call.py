"""Running one service function from a CLI command, as the local system administrator.

Owns: opening the app, calling the service with `Actor.local_cli()`, and turning
service refusals into the command line's one-line reasons (every problem line
on stderr first, for people). Must not: decide anything; services do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from admin.cli import config_path, run, want_json
from admin.context import App, open_app, settings_from
from admin.errors import CliError
from admin.services.actor import Actor
from admin.services.errors import SERVICE_ERRORS, ServiceError

T = TypeVar("T")


def cli_error(exc: Exception, *, as_json: bool) -> CliError:
    """The CliError for a service refusal; problem lines go to stderr for people."""
    if not isinstance(exc, ServiceError):
        return CliError(str(exc))
    if not as_json:
        for line in exc.problems:
            if line != str(exc):
                click.echo(line, err=True)
    return CliError(str(exc), details=exc.details)


def call(ctx: click.Context, work: Callable[[Actor, App], Awaitable[T]]) -> T:
    """Open the app named by the command's configuration and run `work(actor, app)`."""

    async def go() -> T:
        async with open_app(settings_from(config_path(ctx))) as app:
            return await work(Actor.local_cli(), app)

    try:
        return run(go())
    except SERVICE_ERRORS as exc:
        raise cli_error(exc, as_json=want_json(ctx)) from None
