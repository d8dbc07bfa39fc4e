"""`barid backup DEST` and `barid restore SRC --data-dir DIR`.

Owns: these commands' options, reading the passphrase (a file or stdin, never
argv), progress on stderr and the output. Must not: hold the steps (admin.backup
and admin.restore do).
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

import click

from admin.backup import create_backup
from admin.cli import common, config_path, want_json
from admin.context import settings_from
from admin.errors import EXIT_USAGE, CliError
from admin.output import emit
from admin.restore import restore_backup

MIN_PASSPHRASE = 12


def register(cli: click.Group) -> None:
    cli.add_command(backup_cmd)
    cli.add_command(restore_cmd)


def read_passphrase(file: str | None, *, confirm: bool) -> bytes:
    """From --passphrase-file, else a prompt on a terminal, else stdin's first line."""
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--passphrase-file: cannot read {file} ({exc})", EXIT_USAGE) from None
        phrase = text.splitlines()[0] if text.strip() else ""
    elif sys.stdin.isatty():
        phrase = getpass.getpass("backup passphrase: ")
        if confirm and getpass.getpass("again: ") != phrase:
            raise CliError("the two passphrases differ", EXIT_USAGE)
    else:
        phrase = sys.stdin.readline().rstrip("\r\n")
    if not phrase:
        raise CliError("no passphrase given (use --passphrase-file FILE or stdin)", EXIT_USAGE)
    if confirm and len(phrase) < MIN_PASSPHRASE:
        raise CliError(f"the passphrase must have at least {MIN_PASSPHRASE} characters",
                       EXIT_USAGE)  # fmt: skip
    return phrase.encode("utf-8")


def _say(line: str) -> None:
    click.echo(line, err=True)


_PASSPHRASE_HELP = "Read the passphrase from this file (first line); default: stdin."  # noqa: S105
_BINDIR_HELP = "Folder of pg_dump/pg_restore (default: the server's version, then PATH)."


@click.command("backup")
@common
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--passphrase-file", default=None, type=click.Path(dir_okay=False),
              help=_PASSPHRASE_HELP)  # fmt: skip
@click.option("--pg-bindir", default=None, type=click.Path(file_okay=False), help=_BINDIR_HELP)
@click.pass_context
def backup_cmd(ctx: click.Context, dest: str, passphrase_file: str | None,
               pg_bindir: str | None) -> None:  # fmt: skip
    """Back up database, keys, configuration, policy and TLS into DEST, encrypted.

    Runs while the gateway serves: the database copy is one consistent snapshot.
    The passphrase (at least 12 characters) encrypts every member; keep it apart
    from the archive: without it nothing can be restored.
    """
    settings = settings_from(config_path(ctx))
    chosen = config_path(ctx) or os.environ.get("BARID_CONFIG")
    passphrase = read_passphrase(passphrase_file, confirm=True)
    result = create_backup(settings, Path(chosen) if chosen else None, Path(dest), passphrase,
                           pg_bindir=pg_bindir, say=_say)  # fmt: skip
    emit(result, _backup_text(result), as_json=want_json(ctx))


def _backup_text(result: dict[str, Any]) -> str:
    database = result["database"]
    return "\n".join([
        f"backup:   {result['archive']} ({result['size']} bytes)",
        f"database: {database['kind']}, schema {database['schema']}",
        f"files:    {result['files']} (configuration, keys, TLS, policy, data directory)",
    ])  # fmt: skip


@click.command("restore")
@common
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("--data-dir", required=True, type=click.Path(file_okay=False),
              help="New (or empty) data directory to restore into.")  # fmt: skip
@click.option("--database-url", default=None,
              help="PostgreSQL backups: an empty database to load the dump into.")  # fmt: skip
@click.option("--passphrase-file", default=None, type=click.Path(dir_okay=False),
              help=_PASSPHRASE_HELP)  # fmt: skip
@click.option("--pg-bindir", default=None, type=click.Path(file_okay=False), help=_BINDIR_HELP)
@click.pass_context
def restore_cmd(ctx: click.Context, src: str, data_dir: str, database_url: str | None,
                passphrase_file: str | None, pg_bindir: str | None) -> None:  # fmt: skip
    """Verify SRC completely, then restore it into a new data directory.

    A damaged, altered or incomplete archive is refused before anything is written.
    Then run `barid init --data-dir DIR` (applies migrations if this Barid is newer)
    and `barid audit verify`.
    """
    passphrase = read_passphrase(passphrase_file, confirm=False)
    result = restore_backup(Path(src), Path(data_dir), passphrase, database_url=database_url,
                            pg_bindir=pg_bindir, say=_say)  # fmt: skip
    emit(result, lambda: _restore_text(result), as_json=want_json(ctx))


def _restore_text(result: dict[str, Any]) -> str:
    lines = [
        f"restored into {result['data_dir']} ({result['files']} files)",
        f"database: {result['database']['kind']} -> {result['database']['restored_to']}",
    ]
    if result["external"]:
        lines.append("files that lived outside the data directory were restored under external/:")
        lines += [f"  {path}" for path in result["external"]]
    if result["database"]["kind"] == "postgresql":
        lines.append("point database.url (or BARID_DATABASE__URL) at the restored database")
    lines.append("next: barid init --data-dir DIR (migrations), then barid audit verify")
    return "\n".join(lines)
