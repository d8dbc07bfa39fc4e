"""`barid queue list|show|retry|hold|release|purge`: the delivery queue for operators.

Owns: these commands' options and output. Must not: hold the use cases; each
command calls one function of admin.services.queue as the local system administrator.
"""

from __future__ import annotations

import click

from admin.cli import common, want_json
from admin.errors import EXIT_USAGE, CliError
from admin.output import emit
from admin.service_call import call
from admin.services import queue
from gateway.model.target import DeliveryTarget
from gateway.store.queue import MAX_LIMIT, STATES, QueueEntry
from gateway.store.revocation import check_revoke_reason


def register(cli: click.Group) -> None:
    cli.add_command(queue_group)


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
    query = queue.QueueQuery(state=state, target=target.column if target else None, limit=limit)
    entries = call(ctx, lambda actor, app: queue.list_entries(actor, app, query))
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
    entry = call(ctx, lambda actor, app: queue.show(actor, app, entry_id))
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
    _change(ctx, "retried", call(ctx, lambda actor, app: queue.retry(actor, app, entry_id)))


@queue_group.command("hold")
@common
@click.argument("entry_id", metavar="ID", type=int)
@click.pass_context
def queue_hold(ctx: click.Context, entry_id: int) -> None:
    """Set a queued entry aside: it is not delivered until released."""
    _change(ctx, "held", call(ctx, lambda actor, app: queue.hold(actor, app, entry_id)))


@queue_group.command("release")
@common
@click.argument("entry_id", metavar="ID", type=int)
@click.pass_context
def queue_release(ctx: click.Context, entry_id: int) -> None:
    """Make a held entry queued and due now."""
    _change(ctx, "released", call(ctx, lambda actor, app: queue.release(actor, app, entry_id)))


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
    _change(ctx, "purged", call(ctx, lambda actor, app: queue.purge(actor, app, entry_id, reason)))
