"""`barid dns --domain D`: every DNS record an agency mail domain needs, as
zone-file lines or JSON (gateway.http.domain_dns builds them).

Owns: this command's options and output. Must not: build records itself or
write anything.
"""

from __future__ import annotations

from typing import Any

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.errors import CliError
from admin.output import emit
from gateway.http.clientconfig.model import MailEndpoints, find_domain
from gateway.http.domain_dns import domain_dns
from gateway.store.directory import DirectoryError, normalize_address, normalize_domain
from keys.dkim_dns import dkim_records


def register(cli: click.Group) -> None:
    cli.add_command(dns)


@click.command("dns")
@common
@click.option("--domain", "domain", required=True, help="The agency's mail domain.")
@click.option(
    "--reports-to",
    "reports_to",
    default="",
    help="Address for DMARC and TLS-RPT reports (default: postmaster@DOMAIN).",
)
@click.pass_context
def dns(ctx: click.Context, domain: str, reports_to: str) -> None:
    """Print MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, autoconfig and SRV records."""
    try:
        name = normalize_domain(domain)
        reports = normalize_address(reports_to or f"postmaster@{name}")
    except DirectoryError as exc:
        raise CliError(str(exc)) from None

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            if find_domain(await app.directory.snapshot(), name) is None:
                raise CliError(f"no agency has the mail domain {name}")
            s = app.settings
            try:
                dkim = dkim_records(app.keys, s.keys.dkim_selector, name)
            except ValueError as exc:
                raise CliError(str(exc)) from None
            endpoints = MailEndpoints(
                hostname=s.server.hostname,
                imaps_port=s.imap.imaps_port,
                imap_port=s.imap.port,
                smtps_port=s.smtp.smtps_port,
                submission_port=s.smtp.submission_port,
            )
            plan = domain_dns(
                name,
                endpoints,
                transfer_port=s.smtp.transfer_port,
                public_url=s.http.public_url,
                dkim=dkim,
                reports_to=reports,
            )
            return {"text": plan.zone_text(), "data": plan.as_dict()}

    result = run(go())
    emit(result["data"], result["text"], as_json=want_json(ctx))
