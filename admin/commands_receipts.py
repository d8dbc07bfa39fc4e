"""`barid receipts evidence`: the signed delivery evidence of a summarised message.

Owns: this command's options and output. Must not: hold the logic
(gateway.delivery.receipt_evidence rebuilds each kept receipt with its stored
signature and checks it against this gateway's DKIM keys).

Without `--out`, one line per recipient (address, delivery time, whether the
signature verifies), or with `--recipient` the signed receipt itself on stdout;
with `--out DIR`, each receipt is written to DIR as an .eml file. Exit 1 with a
one-line reason when the message or its evidence is unknown, or when a receipt
does not verify.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.errors import CliError
from admin.output import emit
from gateway.delivery.receipt_evidence import (
    Evidence,
    EvidenceNotFound,
    check_evidence,
    load_evidence,
)
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
    help="Write each signed receipt to this directory as an .eml file.",
)
@click.pass_context
def receipts_evidence(
    ctx: click.Context, registry: str, recipient: str | None, out: Path | None
) -> None:
    """The signed delivery receipts kept for REGISTRY (e.g. MOH/2026/000042)."""
    settings = settings_from(config_path(ctx))

    async def go() -> list[tuple[Evidence, bool]]:
        async with open_app(settings) as app:
            public = settings.http.public_url.rstrip("/")
            found = await load_evidence(
                app.sessions,
                registry,
                recipient=recipient,
                hostname=settings.server.hostname,
                verify_url=lambda token: f"{public}{VERIFY_PATH}{token}",
            )
            selector = settings.keys.dkim_selector
            return [(item, check_evidence(item, app.keys, selector)) for item in found]

    try:
        checked = run(go())
    except EvidenceNotFound as exc:
        raise CliError(str(exc)) from None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = registry.replace("/", "-")
        for item, _ in checked:
            (out / f"{stem}-{item.recipient}.eml").write_bytes(item.receipt)
    if recipient is not None and out is None and not want_json(ctx):
        sys.stdout.buffer.write(checked[0][0].receipt)
        sys.stdout.buffer.flush()
    else:
        rows = [
            {"recipient": i.recipient, "delivered_at": i.delivered_at, "verified": ok}
            for i, ok in checked
        ]
        emit(
            rows,
            lambda: "\n".join(
                f"{r['recipient']}  {r['delivered_at']}  "
                f"{'verified' if r['verified'] else 'NOT VERIFIED'}"
                for r in rows
            ),
            as_json=want_json(ctx),
        )
    bad = [i.recipient for i, ok in checked if not ok]
    if bad:
        raise CliError(f"{len(bad)} receipt(s) of {registry} do not verify, first {bad[0]}")
