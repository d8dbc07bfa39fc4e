"""`barid dkim dns` (the DNS records to publish for the gateway's DKIM keys) and
`barid keys rotate` (a new token signing key; the old one kept for verification).

Owns: these commands' options and output. Must not: touch key files itself
(keys.gateway_keys reads and rotates them).
"""

from __future__ import annotations

from typing import Any

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.errors import CliError
from admin.output import emit
from admin.services.actor import Actor
from gateway.store import audit, signing_keys
from gateway.store.db import writing
from keys.dkim_dns import dkim_records
from keys.gateway_keys import rotate_signing_key
from keys.key_files import KeyFileError


def register(cli: click.Group) -> None:
    cli.add_command(dkim)
    cli.add_command(keys_group)


@click.group()
def dkim() -> None:
    """DKIM signing of the copies that leave the gateway."""


@dkim.command("dns")
@common
@click.option("--domain", "domains", multiple=True,
              help="Only this mail domain (repeatable); default: every agency domain.")  # fmt: skip
@click.pass_context
def dkim_dns(ctx: click.Context, domains: tuple[str, ...]) -> None:
    """Print the TXT records (RSA and Ed25519, RFC 6376 / RFC 8463) per mail domain."""

    async def go() -> list[dict[str, Any]]:
        async with open_app(settings_from(config_path(ctx))) as app:
            wanted = list(domains) or sorted(
                {a.domain for a in (await app.directory.snapshot()).agencies.values()}
            )
            if not wanted:
                raise CliError("no agency domains yet; add an agency or pass --domain")
            out = []
            for domain in wanted:
                try:
                    records = dkim_records(app.keys, app.settings.keys.dkim_selector, domain)
                except ValueError as exc:
                    raise CliError(str(exc)) from None
                out += [
                    {
                        "name": r.name,
                        "type": "TXT",
                        "value": r.value,
                        "zone": r.zone_line(),
                        "algorithm": r.algorithm,
                        "domain": r.domain,
                    }
                    for r in records
                ]
            return out

    records = run(go())
    emit(records, lambda: "\n".join(r["zone"] for r in records), as_json=want_json(ctx))


@click.group("keys")
def keys_group() -> None:
    """The gateway's own keys."""


@keys_group.command("rotate")
@common
@click.pass_context
def keys_rotate(ctx: click.Context) -> None:
    """Make a new token signing key; the old public key is kept so old tokens verify.

    The key set lives in the database: every node (this one's running gateway
    too) signs with the new key within a few seconds, without a restart. This
    node's key files are updated as well.
    """

    async def go() -> dict[str, str]:
        async with open_app(settings_from(config_path(ctx))) as app:
            # The event and the new set commit only if the files were rotated too.
            async with writing(app.sessions) as session:
                old_id, new_id, new = await signing_keys.rotate(session, app.keys.master_key)
                try:
                    rotate_signing_key(app.settings.keys_dir, new)
                except KeyFileError as exc:
                    raise CliError(f"gateway keys: {exc}") from None
                await audit.append(
                    session,
                    app.audit_key,
                    actor=Actor.local_cli().audit_name,
                    action="keys.rotate",
                    target="token-signing-key",
                    details={"retired_key_id": old_id, "current_key_id": new_id},
                )
            return {"retired": old_id, "current": new_id}

    result = run(go())
    emit(
        result,
        f"retired token signing key {result['retired']} (kept for verification)\n"
        f"new token signing key {result['current']}\n"
        "every node signs with it within a few seconds (no restart needed)",
        as_json=want_json(ctx),
    )
