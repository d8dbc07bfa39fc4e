"""`barid alerts list|ack|scan`: the alerts the gateway raised, acknowledging them,
running the alert rules on demand.

Owns: these commands' options and output. Must not: hold the use cases; each
command calls one function of admin.services.alerts as the local system
administrator (who is recorded in the acknowledgement's audit event).
"""

from __future__ import annotations

import click

from admin.cli import common, want_json
from admin.output import emit
from admin.service_call import call
from admin.services import alerts
from gateway.alerts.progress import Progress

SINCE_HELP = (
    "an ISO 8601 date or date-time (UTC unless an offset is given) or a span back"
    " from now: 30m, 24h, 7d, 2w"
)


def register(cli: click.Group) -> None:
    cli.add_command(alerts_group)


@click.group("alerts")
def alerts_group() -> None:
    """Alerts: verification spikes, peer TLS trouble, login lockouts, and the alert
    rules over the access trail (body volume, after hours, denials, new client)."""


def _fact(value: str | int | list[str]) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


def _line(alert: alerts.AlertView) -> str:
    facts = " ".join(f"{key}={_fact(value)}" for key, value in alert.facts.items())
    ack = alert.acknowledgement
    state = f"acknowledged by {ack.by} at {ack.at}" if ack else "open"
    return "  ".join([str(alert.id), alert.at, alert.kind.value, alert.subject or "-",
                      facts or "-", state])  # fmt: skip


@alerts_group.command("list")
@common
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in alerts.AlertKind]),
    default=None,
    help="Only this kind of alert.",
)
@click.option("--since", default=None, help=f"Only alerts at or after this time: {SINCE_HELP}.")
@click.option("--until", default=None, help="Only alerts before this time (as --since).")
@click.option("--open", "only_open", is_flag=True, help="Only alerts not acknowledged yet.")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, alerts.MAX_ALERTS),
    help="Show at most this many (the newest).",
)  # fmt: skip
@click.pass_context
def alerts_list(
    ctx: click.Context,
    kind: str | None,
    since: str | None,
    until: str | None,
    only_open: bool,
    limit: int,
) -> None:
    """Alerts, newest first, one line each: id, time (UTC), kind, what it is about,
    its facts, and open or who acknowledged it when."""
    query = alerts.AlertQuery(
        kind=alerts.AlertKind(kind) if kind else None, since=since, until=until,
        acknowledged=False if only_open else None, limit=limit,
    )  # fmt: skip
    found = call(ctx, lambda actor, app: alerts.list_alerts(actor, app, query))
    emit(
        [alert.model_dump(mode="json") for alert in found],
        lambda: "\n".join(_line(alert) for alert in found) or "no alerts",
        as_json=want_json(ctx),
    )


@alerts_group.command("ack")
@common
@click.argument("alert_id", metavar="ID", type=click.IntRange(1, alerts.MAX_ID))
@click.option("--note", default="", help="One line recorded with the acknowledgement.")
@click.pass_context
def alerts_ack(ctx: click.Context, alert_id: int, note: str) -> None:
    """Acknowledge alert ID (audited). An alert acknowledged already is left as it
    is, and its acknowledgement is shown."""
    ack = call(ctx, lambda actor, app: alerts.acknowledge(actor, app, alert_id, note))
    text = f"alert {ack.alert_id} acknowledged by {ack.by} at {ack.at}"
    if ack.note:
        text += f": {ack.note}"
    emit(ack.model_dump(mode="json"), text, as_json=want_json(ctx))


@alerts_group.command("scan")
@common
@click.option(
    "--since", default=None,
    help=f"Evaluate the events at or after this time again: {SINCE_HELP}"
    " (default: the events new since the last scan, the running gateway's or this"
    " command's).",
)  # fmt: skip
@click.pass_context
def alerts_scan(ctx: click.Context, since: str | None) -> None:
    """Run the alert rules now (the running gateway does every [alerts]
    scan_every_seconds): each alert not raised before is written to the audit
    trail, counted and sent to the webhook; then every alert not filed yet goes
    into its agency's security mailbox. One line per alert raised and a summary;
    a long scan says how far it is on standard error."""
    progress = Progress(lambda line: click.echo(line, err=True))
    report = call(ctx, lambda actor, app: alerts.scan(actor, app, since, progress=progress))
    summary = f"{report.events} events read, {len(report.raised)} alerts raised"
    if report.fired > len(report.raised):
        summary += f", {report.fired - len(report.raised)} raised before"
    if report.filed:
        summary += f", {report.filed} alert messages filed"
    emit(
        report.model_dump(mode="json"),
        lambda: "\n".join([*(_line(alert) for alert in report.raised), summary]),
        as_json=want_json(ctx),
    )
