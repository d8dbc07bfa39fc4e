"""`barid agency ...`, `barid employee ...`, `barid directory import`.

Owns: the directory commands' options and presentation. Must not: hold the use
cases; each command calls one function of admin.services (directory, employees,
bulk_import) as the local system administrator.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from admin.cli import common, want_json
from admin.errors import CliError
from admin.output import emit, fields, table
from admin.service_call import call
from admin.services import bulk_import, employees
from admin.services import directory as agencies
from keys import passwords

MAX_KEY_FILE = agencies.MAX_KEY_FILE


def _read_password(address: str) -> SecretStr:
    if sys.stdin.isatty():
        value = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    try:
        passwords.check_new_password(str(value), address=address.strip().lower())
    except passwords.WeakPasswordError as exc:
        raise CliError(str(exc)) from None
    return SecretStr(str(value))


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
    data = agencies.AgencyAdd(
        code=code, name_en=name_en, name_ar=name_ar, kind=kind, domain=domain, parent=parent
    )
    result = call(ctx, lambda actor, app: agencies.add_agency(actor, app, data)).model_dump()
    emit(result, f"added agency {result['code']}", as_json=want_json(ctx))


@agency.command("list")
@common
@click.pass_context
def agency_list(ctx: click.Context) -> None:
    """List every agency."""
    rows = [a.model_dump() for a in call(ctx, agencies.list_agencies)]
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
    view = call(ctx, lambda actor, app: agencies.show_agency(actor, app, code)).model_dump()

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
    data = agencies.AgencyMove(code=code, parent=parent)
    result = call(ctx, lambda actor, app: agencies.move_agency(actor, app, data)).model_dump()
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
    data = agencies.TrustCa(
        code=code, pem=Path(ca_file).read_bytes()[:MAX_KEY_FILE], source=ca_file
    )
    result = call(ctx, lambda actor, app: agencies.trust_ca(actor, app, data)).model_dump()
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
    data = employees.EmployeeAdd(
        address=address,
        agency=agency_code,
        name_en=name_en,
        name_ar=name_ar,
        role=role,
        clearance=clearance,
        password=_read_password(address) if password_stdin else None,
    )
    result = call(ctx, lambda actor, app: employees.add_employee(actor, app, data)).model_dump()
    emit(
        result, f"added {result['address']}: employee code {result['code']}", as_json=want_json(ctx)
    )


@employee.command("list")
@common
@click.option("--agency", "agency_code", default=None, help="Only this agency.")
@click.pass_context
def employee_list(ctx: click.Context, agency_code: str | None) -> None:
    """List employees."""
    found = call(ctx, lambda actor, app: employees.list_employees(actor, app, agency_code))
    rows = [e.model_dump() for e in found]
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
    view = call(ctx, lambda actor, app: employees.show_employee(actor, app, address)).model_dump()

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
    result = call(
        ctx, lambda actor, app: employees.suspend_employee(actor, app, address)
    ).model_dump()
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
    data = employees.PasswordReset(address=address, password=_read_password(address))
    result = call(ctx, lambda actor, app: employees.reset_password(actor, app, data))
    emit(result.model_dump(), "password set", as_json=want_json(ctx))


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
    request = employees.IdentityRegister(address=address, material=data, source=key_file)
    result = call(
        ctx, lambda actor, app: employees.register_identity(actor, app, request)
    ).model_dump()
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
    request = bulk_import.DirectoryImport(data=data, source=csv_file, dry_run=dry_run)
    with contextlib.ExitStack() as stack:

        def progress(total: int) -> Callable[[int], None]:
            if as_json or total < 200:
                return lambda n: None
            bar = click.progressbar(length=total, label="importing", file=sys.stderr, show_pos=True)
            return stack.enter_context(bar).update

        result = call(
            ctx, lambda actor, app: bulk_import.import_directory(actor, app, request, progress)
        ).model_dump()
    verb = "would import" if dry_run else "imported"
    emit(
        {"ok": True, **result},
        f"{verb} {result['agencies']} agencies and {result['employees']} employees",
        as_json=as_json,
    )
