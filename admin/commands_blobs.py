"""`barid blobs gc|migrate`: the blob stores' collector and moving blobs between backends.

Owns: these commands' options, progress lines and output. Must not: hold the
logic; `gc` runs gateway.store.blobstore.gc.collect (the same run `barid serve`
makes periodically) and `migrate` runs gateway.store.blobstore.migrate.

Failure behaviour: a store or configuration fault is a one-line error (exit 1);
`migrate` exits 1 if any blob could not be moved (they are left where they were;
rerunning continues with the rest).
"""

from __future__ import annotations

import dataclasses

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.errors import CliError
from admin.output import emit
from gateway.config import Settings
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.blobstore import BlobStoreError
from gateway.store.blobstore.gc import GcReport, collect
from gateway.store.blobstore.migrate import BACKEND_SCHEMES, MigrateReport, migrate_blobs
from keys.gateway_keys import derive_key


def register(cli: click.Group) -> None:
    cli.add_command(blobs_group)


@click.group("blobs")
def blobs_group() -> None:
    """Documents' ciphertext outside the database: collect orphans, migrate backends."""


async def _gc(settings: Settings, grace: float | None) -> GcReport:
    try:
        async with open_app(settings) as app:
            return await collect(
                app.engine,
                app.sessions,
                app.blob_stores,
                grace_seconds=settings.blobs.gc_grace_seconds if grace is None else grace,
                lock_path=settings.data_dir / "blob-gc.lock",
            )
    except BlobStoreError as exc:
        raise CliError(f"blob store: {exc}") from None


@blobs_group.command("gc")
@common
@click.option(
    "--grace-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Override [blobs] gc_grace_seconds for this run.",
)
@click.pass_context
def blobs_gc(ctx: click.Context, grace_seconds: float | None) -> None:
    """Remove objects no row references, once older than the grace period."""
    settings = settings_from(config_path(ctx))
    report = run(_gc(settings, grace_seconds))
    data = dataclasses.asdict(report)
    text = (
        "another collector is running; nothing done"
        if not report.ran
        else f"listed {report.listed}, removed {report.removed} orphan(s),"
        f" kept {report.referenced} referenced and {report.kept_young} within the grace period"
    )
    emit(data, text, as_json=want_json(ctx))


async def _migrate(settings: Settings, backend: str, quiet: bool) -> MigrateReport:

    def progress(report: MigrateReport) -> None:
        if not quiet:
            click.echo(
                f"\r{report.moved + report.failed}/{report.total} blobs"
                f" ({report.moved} moved, {report.failed} failed)",
                nl=False,
                err=True,
            )

    try:
        async with open_app(settings) as app:
            cipher = BlobCipher(derive_key(app.keys.master_key, BLOB_KEK_PURPOSE), app.blob_stores)
            report = await migrate_blobs(app.sessions, cipher, backend, progress=progress)
    except BlobStoreError as exc:
        raise CliError(f"blob store: {exc}") from None
    if not quiet:
        click.echo("", err=True)
    return report


@blobs_group.command("migrate")
@common
@click.option(
    "--to", "backend", required=True, type=click.Choice(sorted(BACKEND_SCHEMES)), help="Target."
)
@click.pass_context
def blobs_migrate(ctx: click.Context, backend: str) -> None:
    """Move every blob over the inline threshold to BACKEND, verifying each copy
    before the row is switched. Resumable: run it again to continue."""
    settings = settings_from(config_path(ctx))
    report = run(_migrate(settings, backend, want_json(ctx)))
    data = dataclasses.asdict(report)
    emit(
        data,
        f"{report.moved} of {report.total} blob(s) moved to {backend},"
        f" {report.failed} left where they were",
        as_json=want_json(ctx),
    )
    if report.failed:
        raise CliError(f"{report.failed} blob(s) could not be moved; run again to retry")
