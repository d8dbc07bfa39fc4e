"""`barid queue list|show|retry|hold|release|purge`: the delivery queue for operators.

Owns: these commands' options and output. Must not: change queue entries itself
(gateway.store.queue does, guarded and audited).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.errors import EXIT_USAGE, CliError
from admin.output import emit
from gateway.model.target import DeliveryTarget
from gateway.store.errors import DATABASE_ERRORS
from gateway.store.queue import MAX_LIMIT, STATES, QueueAdmin, QueueEntry, QueueError
from gateway.store.revocation import check_revoke_reason


def register(cli: click.Group) -> None:
    cli.add_command(queue_group)


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _line(entry: QueueEntry) -> str:
    return "  ".join(
        [
            str(entry.id),
            entry.state,
            entry.target.column,
            entry.registry,
            entry.recipient,
            f"attempts={entry.attempts}",
            f"next={entry.next_attempt_at}",
            f"error={entry.last_error or '-'}",
        ]
    )


def _with_admin(ctx: click.Context, work: Callable[[QueueAdmin], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                return await work(QueueAdmin(app.sessions, app.audit_key))
            except QueueError as exc:
                raise CliError(str(exc)) from None
            except DATABASE_ERRORS:
                raise CliError("the database is not reachable") from None

    return run(go())


@click.group("queue")
def queue_group() -> None:
    """The delivery queue: look at entries, retry, hold, release or purge them."""


def _target(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> DeliveryTarget | None:
    """The `--target` text as a delivery target (a usage error names the accepted forms)."""
    if value is None:
        return None
    try:
        return DeliveryTarget.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@queue_group.command("list")
@common
@click.option("--state", type=click.Choice(STATES), default=None, help="Only this state.")
@click.option(
    "--target",
    default=None,
    callback=_target,
    help='Only this target ("local", "peer:<name>" or "imap:<name>").',
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, MAX_LIMIT))
@click.pass_context
def queue_list(
    ctx: click.Context, state: str | None, target: DeliveryTarget | None, limit: int
) -> None:
    """Delivery queue entries, oldest first, one line each."""
    entries: list[QueueEntry] = _with_admin(
        ctx, lambda admin: admin.list(state=state, target=target, limit=limit)
    )
    emit(
        [e.as_dict() for e in entries],
        lambda: "\n".join(_line(e) for e in entries) or "no entries",
        as_json=want_json(ctx),
    )


@queue_group.command("show")
@common
@click.argument("entry_id", metavar="ID", type=int)
@click.pass_context
def queue_show(ctx: click.Context, entry_id: int) -> None:
    """One entry with its registry number, recipient and trace code."""
    entry: QueueEntry = _with_admin(ctx, lambda admin: admin.show(entry_id))
    emit(
        entry.as_dict(),
        lambda: _line(entry) + f"  trace={entry.trace_code}",
        as_json=want_json(ctx),
    )


def _change(ctx: click.Context, verb: str, entry: QueueEntry) -> None:
    emit(entry.as_dict(), f"{verb}: {_line(entry)}", as_json=want_json(ctx))


@queue_group.command("retry")
@common
@click.argument("entry_id", metavar="ID", type=int)
@click.pass_context
def queue_retry(ctx: click.Context, entry_id: int) -> None:
    """Make a queued or held entry queued and due now."""
    _change(ctx, "retried", _with_admin(ctx, lambda a: a.retry(entry_id, actor=_actor())))


@queue_group.command("hold")
@common
@click.argument("entry_id", metavar="ID", type=int)
@click.pass_context
def queue_hold(ctx: click.Context, entry_id: int) -> None:
    """Set a queued entry aside: it is not delivered until released."""
    _change(ctx, "held", _with_admin(ctx, lambda a: a.hold(entry_id, actor=_actor())))


@queue_group.command("release")
@common
@click.argument("entry_id", metavar="ID", type=int)
@click.pass_context
def queue_release(ctx: click.Context, entry_id: int) -> None:
    """Make a held entry queued and due now."""
    _change(ctx, "released", _with_admin(ctx, lambda a: a.release(entry_id, actor=_actor())))


@queue_group.command("purge")
@common
@click.argument("entry_id", metavar="ID", type=int)
@click.option("--reason", required=True, help="Why (one line); recorded and audited.")
@click.pass_context
def queue_purge(ctx: click.Context, entry_id: int, reason: str) -> None:
    """Withdraw a queued or held entry: it fails and the sender gets a non-delivery receipt."""
    try:
        reason = check_revoke_reason(reason)
    except ValueError as exc:
        raise CliError(f"--reason: {exc}", EXIT_USAGE) from None
    _change(ctx, "purged", _with_admin(ctx, lambda a: a.purge(entry_id, reason, actor=_actor())))
