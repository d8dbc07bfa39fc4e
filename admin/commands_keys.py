"""`barid dkim dns`: the DNS records to publish for the gateway's DKIM keys.

Owns: this command's options and output. Must not: touch key files beyond
reading them (keys.gateway_keys does that).
"""

from __future__ import annotations

from typing import Any

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.errors import CliError
from admin.output import emit
from keys.gateway_keys import dkim_records


def register(cli: click.Group) -> None:
    cli.add_command(dkim)


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
