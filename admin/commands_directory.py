"""`barid agency ...`, `barid employee ...`, `barid directory import`.

Owns: the directory commands' options and presentation. Must not: write rows
itself; `gateway.store.directory.Directory` does, one audited transaction each.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.directory_import import plan_import, read_rows
from admin.errors import CliError
from admin.output import emit, fields, table
from gateway.store.directory import AgencyInput, DirectoryError, EmployeeInput
from keys import passwords
from keys.identities import IdentityError, check_identity_owner, inspect_identity
from policies.directory import EmployeeStatus

ACTOR = "cli"
MAX_KEY_FILE = 1024 * 1024


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return ACTOR


def _read_password(address: str) -> str:
    if sys.stdin.isatty():
        value = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    try:
        passwords.check_new_password(str(value), address=address.strip().lower())
    except passwords.WeakPasswordError as exc:
        raise CliError(str(exc)) from None
    return str(value)


def _material(data: bytes) -> str:
    """The imported file as stored: text as is, binary as base64 with a prefix."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


def _tree_text(node: dict[str, Any], depth: int = 0) -> list[str]:
    lines = [f"{'  ' * depth}{node['code']}  ({node['kind']})  {node['name_en']}"]
    for child in node["children"]:
        lines += _tree_text(child, depth + 1)
    return lines


def register(cli: click.Group) -> None:
    cli.add_command(agency)
    cli.add_command(employee)
    cli.add_command(directory)


@click.group()
def agency() -> None:
    """Agencies: the directory tree."""


@agency.command("add")
@common
@click.argument("code")
@click.option("--name-en", required=True, help="Name in English.")
@click.option("--name-ar", default="", help="Name in Arabic (default: the English name).")
@click.option("--kind", required=True, help="ministry|entity|governorate|directorate|branch|region")
@click.option("--domain", required=True, help="Mail domain, e.g. moh.gov.example")
@click.option("--parent", default=None, help="Parent agency code.")
@click.pass_context
def agency_add(
    ctx: click.Context,
    code: str,
    name_en: str,
    name_ar: str,
    kind: str,
    domain: str,
    parent: str | None,
) -> None:
    """Add an agency under PARENT (or as a root)."""

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                return await app.directory.add_agency(
                    AgencyInput(code, name_en, name_ar, kind, domain, parent), actor=_actor()
                )
            except DirectoryError as exc:
                raise CliError(str(exc)) from None

    result = run(go())
    emit(result, f"added agency {result['code']}", as_json=want_json(ctx))


@agency.command("list")
@common
@click.pass_context
def agency_list(ctx: click.Context) -> None:
    """List every agency."""

    async def go() -> list[dict[str, Any]]:
        async with open_app(settings_from(config_path(ctx))) as app:
            return await app.directory.list_agencies()

    rows = run(go())
    emit(
        rows,
        lambda: table(rows, ["code", "kind", "parent", "domain", "name_en", "status"]),
        as_json=want_json(ctx),
    )


@agency.command("show")
@common
@click.argument("code")
@click.pass_context
def agency_show(ctx: click.Context, code: str) -> None:
    """Show an agency with its subtree."""

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                return await app.directory.show_agency(code)
            except DirectoryError as exc:
                raise CliError(str(exc)) from None

    view = run(go())

    def text() -> str:
        out = [fields(view), f"{'ancestors:'.ljust(18)} {' > '.join(view['ancestors']) or '-'}"]
        out += ["subtree:", *("  " + line for line in _tree_text(view["subtree"]))]
        return "\n".join(out)

    emit(view, text, as_json=want_json(ctx))


@agency.command("set-parent")
@common
@click.argument("code")
@click.argument("parent", required=False)
@click.pass_context
def agency_set_parent(ctx: click.Context, code: str, parent: str | None) -> None:
    """Move agency CODE under PARENT (omit PARENT to make it a root)."""

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                return await app.directory.set_parent(code, parent, actor=_actor())
            except DirectoryError as exc:
                raise CliError(str(exc)) from None

    result = run(go())
    emit(
        result,
        f"moved {result['code']} under {result['parent'] or '(root)'}",
        as_json=want_json(ctx),
    )


@agency.command("trust-ca")
@common
@click.argument("code")
@click.argument("ca_file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def agency_trust_ca(ctx: click.Context, code: str, ca_file: str) -> None:
    """Trust CA_FILE (PEM) to issue S/MIME certificates for agency CODE and below."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    data = Path(ca_file).read_bytes()[:MAX_KEY_FILE]
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CliError(f"{ca_file}: not a PEM X.509 certificate") from None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CliError(f"{ca_file}: not a CA certificate (basicConstraints CA:TRUE missing)")
    fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                return await app.directory.trust_ca(
                    code,
                    fingerprint=fingerprint,
                    subject=cert.subject.rfc4514_string(),
                    pem=pem,
                    actor=_actor(),
                )
            except DirectoryError as exc:
                raise CliError(str(exc)) from None

    result = run(go())
    emit(
        result, f"agency {result['agency']} now trusts {result['subject']}", as_json=want_json(ctx)
    )


@click.group()
def employee() -> None:
    """Employees: addresses, codes, clearances, passwords, signing keys."""


@employee.command("add")
@common
@click.argument("address")
@click.option("--agency", "agency_code", required=True, help="Agency code.")
@click.option("--name-en", required=True)
@click.option("--name-ar", default="")
@click.option("--role", default="staff", show_default=True)
@click.option("--clearance", default="internal", show_default=True,
              help="public|internal|confidential|secret")  # fmt: skip
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def employee_add(
    ctx: click.Context,
    address: str,
    agency_code: str,
    name_en: str,
    name_ar: str,
    role: str,
    clearance: str,
    password_stdin: bool,
) -> None:
    """Add an employee; prints the issued employee code."""
    password_hash = passwords.hash_password(_read_password(address)) if password_stdin else None

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                return await app.directory.add_employee(
                    EmployeeInput(
                        address, agency_code, name_en, name_ar, role, clearance, password_hash
                    ),
                    actor=_actor(),
                )
            except DirectoryError as exc:
                raise CliError(str(exc)) from None

    result = run(go())
    emit(
        result, f"added {result['address']}: employee code {result['code']}", as_json=want_json(ctx)
    )


@employee.command("list")
@common
@click.option("--agency", "agency_code", default=None, help="Only this agency.")
@click.pass_context
def employee_list(ctx: click.Context, agency_code: str | None) -> None:
    """List employees."""

    async def go() -> list[dict[str, Any]]:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                return await app.directory.list_employees(agency_code)
            except DirectoryError as exc:
                raise CliError(str(exc)) from None

    rows = run(go())
    emit(
        rows,
        lambda: table(
            rows, ["address", "code", "agency", "role", "clearance", "status", "name_en"]
        ),
        as_json=want_json(ctx),
    )


@employee.command("show")
@common
@click.argument("address")
@click.pass_context
def employee_show(ctx: click.Context, address: str) -> None:
    """Show an employee and their registered signing identities."""

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                return await app.directory.show_employee(address)
            except DirectoryError as exc:
                raise CliError(str(exc)) from None

    view = run(go())

    def text() -> str:
        ids = [f"  {i['kind']}  {i['fingerprint']}" for i in view["identities"]] or ["  (none)"]
        return "\n".join([fields(view), "signing identities:", *ids])

    emit(view, text, as_json=want_json(ctx))


@employee.command("suspend")
@common
@click.argument("address")
@click.pass_context
def employee_suspend(ctx: click.Context, address: str) -> None:
    """Suspend an employee: no login, no submission, no new mail to them."""

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                return await app.directory.set_status(
                    address, EmployeeStatus.SUSPENDED, actor=_actor()
                )
            except DirectoryError as exc:
                raise CliError(str(exc)) from None

    result = run(go())
    emit(result, f"suspended {result['address']}", as_json=want_json(ctx))


@employee.command("set-password")
@common
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def employee_set_password(ctx: click.Context, address: str, password_stdin: bool) -> None:
    """Set an employee's password (Argon2id)."""
    if not password_stdin and not sys.stdin.isatty():
        raise CliError("pass --password-stdin to read the password from standard input")
    password_hash = passwords.hash_password(_read_password(address))

    async def go() -> None:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                await app.directory.set_password(address, password_hash, actor=_actor())
            except DirectoryError as exc:
                raise CliError(str(exc)) from None

    run(go())
    emit({"ok": True, "address": address.strip().lower()}, "password set", as_json=want_json(ctx))


@employee.command("import-key")
@common
@click.argument("address")
@click.argument("key_file", type=click.Path(dir_okay=False))
@click.pass_context
def employee_import_key(ctx: click.Context, address: str, key_file: str) -> None:
    """Register an OpenPGP public key or an X.509 certificate as a signing identity."""
    try:
        with open(key_file, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise CliError(f"{key_file}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_KEY_FILE:
        raise CliError(f"{key_file}: larger than {MAX_KEY_FILE // 1024} KiB; not a key file")
    try:
        identity = inspect_identity(data)
    except IdentityError as exc:
        raise CliError(f"{key_file}: {exc}") from None

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            try:
                owner, code = await app.directory.employee_identity_facts(address)
                check_identity_owner(identity, owner, code)
                return await app.directory.add_identity(
                    owner,
                    kind=identity.kind,
                    fingerprint=identity.fingerprint,
                    material=_material(data),
                    actor=_actor(),
                )
            except (DirectoryError, IdentityError) as exc:
                raise CliError(str(exc)) from None

    result = run(go())
    emit(
        result,
        f"registered {result['kind']} identity {result['fingerprint']} for {result['address']}",
        as_json=want_json(ctx),
    )


@click.group()
def directory() -> None:
    """The directory as a whole."""


@directory.command("import")
@common
@click.argument("csv_file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check and report; change nothing.")
@click.pass_context
def directory_import(ctx: click.Context, csv_file: str, dry_run: bool) -> None:
    """Import agencies and employees from CSV: every row or none."""
    as_json = want_json(ctx)
    try:
        data = Path(csv_file).read_bytes()
    except OSError as exc:
        raise CliError(f"{csv_file}: cannot read ({exc.strerror})") from None
    rows, problems = read_rows(data)

    async def go() -> dict[str, Any]:
        async with open_app(settings_from(config_path(ctx))) as app:
            plan = plan_import(rows, await app.directory.snapshot())
            found = problems + plan.problems
            if found:
                if not as_json:
                    for line in found:
                        click.echo(f"{csv_file}: {line}", err=True)
                raise CliError(
                    f"{csv_file}: {len(found)} bad row(s); nothing imported",
                    details={"problems": found},
                )
            total = len(plan.agencies) + len(plan.employees)
            show_bar = not as_json and total >= 200
            with (
                click.progressbar(length=total, label="importing", file=sys.stderr, show_pos=True)
                if show_bar
                else _NoBar() as bar
            ):
                try:
                    return await app.directory.import_rows(
                        plan.agencies, plan.employees, actor=_actor(), dry_run=dry_run,
                        progress=bar.update,
                    )  # fmt: skip
                except DirectoryError as exc:
                    raise CliError(f"{csv_file}: {exc}; nothing imported") from None

    result = run(go())
    verb = "would import" if dry_run else "imported"
    emit(
        {"ok": True, **result},
        f"{verb} {result['agencies']} agencies and {result['employees']} employees",
        as_json=as_json,
    )


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None
