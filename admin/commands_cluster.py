"""`barid cluster export-keys` and `barid cluster adopt-config`: sharing a node's keys
and configuration with the other nodes on the same database (docs/SCALING.md).

Owns: these commands' options, audit events and output. Must not: hold the
bundle's format (keys.bundle), its content (admin.cluster_bundle) or the
database's cluster values (gateway.store.cluster_state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from admin.cli import common, config_path, run, want_json
from admin.cluster_bundle import collect
from admin.cluster_join import read_passphrase, write_bundle
from admin.context import open_app, settings_from
from admin.errors import CliError
from admin.output import emit
from admin.services.actor import Actor
from gateway.config.cluster_digest import config_digests
from gateway.logs import node_name
from gateway.store import audit
from gateway.store.cluster_state import adopt_config
from gateway.store.db import writing
from keys.bundle import BundleError, seal_bundle


def register(cli: click.Group) -> None:
    cli.add_command(cluster_group)


@click.group("cluster")
def cluster_group() -> None:
    """Nodes sharing one database: keys and cluster-wide configuration."""


@cluster_group.command("export-keys")
@common
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--passphrase-file", type=click.Path(dir_okay=False, exists=True),
              help="Passphrase file (default: first line of stdin).")  # fmt: skip
@click.pass_context
def export_keys(ctx: click.Context, dest: str, passphrase_file: str | None) -> None:
    """Write this node's keys, TLS, policy, peers and mail servers to DEST, encrypted
    with a passphrase (scrypt + AES-256-GCM, mode 0600), for `barid init --join`."""
    passphrase = read_passphrase(passphrase_file)
    target = Path(dest)

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            node = node_name(app.settings.server.node_id)
            try:
                payload = collect(app.settings, node)
                data = seal_bundle(payload, passphrase)
            except OSError as exc:
                raise CliError(f"cannot read {exc.filename}: {exc.strerror}") from None
            except BundleError as exc:
                raise CliError(str(exc)) from None
            files = sorted(payload["files"])
            # The event commits only once the bundle is on disk.
            async with writing(app.sessions) as session:
                await audit.append(
                    session,
                    app.audit_key,
                    actor=Actor.local_cli().audit_name,
                    action="cluster.export-keys",
                    target=target.name,
                    details={"files": files, "signing_key_id": app.keys.signing_key_id},
                )
                write_bundle(target, data)
            return {"bundle": str(target), "files": files}

    result = run(go())
    emit(
        result,
        f"wrote {result['bundle']} ({len(result['files'])} files, mode 0600);"
        " keep it and its passphrase apart, delete it after the join",
        as_json=want_json(ctx),
    )


@cluster_group.command("adopt-config")
@common
@click.pass_context
def adopt_config_cmd(ctx: click.Context) -> None:
    """Record this node's policy, peers and mail servers as the cluster's (after a
    deliberate change, before it is copied to the other nodes)."""

    async def go() -> dict[str, dict[str, str]]:
        async with open_app(settings_from(config_path(ctx))) as app:
            digests = config_digests(app.settings)
            async with writing(app.sessions) as session:
                before = await adopt_config(session, digests)
                changed = sorted(part for part, digest in digests.items() if before[part] != digest)
                await audit.append(
                    session,
                    app.audit_key,
                    actor=Actor.local_cli().audit_name,
                    action="cluster.adopt-config",
                    target=",".join(changed) or "unchanged",
                    details={"digests": digests, "previous": before},
                )
            return {"digests": digests, "previous": before}

    result = run(go())
    changed = [p for p, d in result["digests"].items() if result["previous"][p] != d]
    emit(
        result,
        "recorded this node's configuration as the cluster's"
        f" (changed: {', '.join(changed) or 'none'})",
        as_json=want_json(ctx),
    )
