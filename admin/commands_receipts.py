"""`barid receipts evidence`: the signed delivery evidence of a summarised message.

Owns: this command's options and output. Must not: hold the logic
(gateway.delivery.receipt_evidence reads and checks the signed statements).

Without `--out`, one line per recipient (address, delivery time, whether the
signature verifies), or JSON with `--json`; with `--out DIR`, for each
recipient the signed statement (.json) and the delivery receipt rebuilt from
the stored facts (.eml, DKIM-signed with the delivery time). Exit 1 with a
one-line reason when the message or its evidence is unknown, or when a
statement does not verify.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.errors import CliError
from admin.output import emit
from gateway.delivery.receipt_evidence import Evidence, EvidenceNotFound, load_evidence
from gateway.stamping.stamper import VERIFY_PATH


def register(cli: click.Group) -> None:
    cli.add_command(receipts_group)


@click.group("receipts")
def receipts_group() -> None:
    """Receipts owed to senders: the delivery evidence kept for summarised messages."""


@receipts_group.command("evidence")
@common
@click.argument("registry")
@click.option("--recipient", default=None, help="Only this recipient's evidence.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write each statement (.json) and delivery receipt (.eml) to this directory.",
)
@click.pass_context
def receipts_evidence(
    ctx: click.Context, registry: str, recipient: str | None, out: Path | None
) -> None:
    """The signed delivery receipts kept for REGISTRY (e.g. MOH/2026/000042)."""
    settings = settings_from(config_path(ctx))
    public = settings.http.public_url.rstrip("/")
    rebuild = (
        settings.server.hostname,
        settings.keys.dkim_selector,
        lambda token: f"{public}{VERIFY_PATH}{token}",
    )

    async def go() -> list[Evidence]:
        async with open_app(settings) as app:
            return await load_evidence(
                app.sessions,
                app.keys,
                registry,
                recipient=recipient,
                receipts=rebuild if out is not None else None,
            )

    try:
        found = run(go())
    except EvidenceNotFound as exc:
        raise CliError(str(exc)) from None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = registry.replace("/", "-")
        for item in found:
            text = json.dumps(item.as_dict(), ensure_ascii=False, indent=2) + "\n"
            (out / f"{stem}-{item.recipient}.json").write_text(text, "utf-8")
            (out / f"{stem}-{item.recipient}.eml").write_bytes(item.receipt)
    rows = [
        {"recipient": i.recipient, "delivered_at": i.delivered_at, **i.as_dict()} for i in found
    ]
    emit(
        rows,
        lambda: "\n".join(
            f"{i.recipient}  {i.delivered_at}  {'verified' if i.verified else 'NOT VERIFIED'}"
            for i in found
        ),
        as_json=want_json(ctx),
    )
    bad = [i.recipient for i in found if not i.verified]
    if bad:
        raise CliError(f"{len(bad)} statement(s) of {registry} do not verify, first {bad[0]}")
