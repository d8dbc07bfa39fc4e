"""`barid admin grant|revoke|list`, `barid admin token ...`, `barid admin totp ...`.

Owns: these commands' options and output; the CLI acts as `Actor.local_cli()`
(system-admin, naming the local user). Must not: change accounts itself (the
services in admin/services/ do, audited) or print a secret more than once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from admin.cli import common, config_path, run, want_json
from admin.context import open_app, settings_from
from admin.errors import CliError
from admin.output import emit, table
from admin.services.account_base import AccountError, AccountKeys
from admin.services.account_services import AccountServices
from admin.services.actor import Actor, Forbidden, OutOfScope, Role
from admin.services.tokens import DEFAULT_DAYS, MAX_DAYS
from gateway.store.errors import DATABASE_ERRORS
from keys.key_files import write_new_file

ROLES = [r.value for r in Role]
GRANT_COLUMNS = ["address", "role", "agency", "granted_by", "granted_at"]
TOKEN_COLUMNS = ["id", "name", "role", "agency", "expires_at", "revoked_at", "last_used_at"]


def register(cli: click.Group) -> None:
    cli.add_command(admin_group)


def _with_services(
    ctx: click.Context, work: Callable[[AccountServices, Actor], Awaitable[Any]]
) -> Any:
    async def go() -> Any:
        async with open_app(settings_from(config_path(ctx))) as app:
            services = AccountServices.build(
                app.sessions, AccountKeys.from_gateway(app.keys), limits=app.settings.admin
            )
            try:
                return await work(services, Actor.local_cli())
            except (AccountError, Forbidden) as exc:
                raise CliError(str(exc)) from None
            except OutOfScope:
                raise CliError("not found") from None
            except DATABASE_ERRORS:
                raise CliError("the database is not reachable") from None

    return run(go())


@click.group("admin")
def admin_group() -> None:
    """Administrators: role grants, API tokens and TOTP enrolment (DESIGN §12)."""


@admin_group.command("grant")
@common
@click.argument("address")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--agency", default=None, help="The agency (subtree) of a scoped role.")
@click.pass_context
def admin_grant(ctx: click.Context, address: str, role: str, agency: str | None) -> None:
    """Grant ROLE to the directory employee ADDRESS."""
    grant = _with_services(ctx, lambda s, actor: s.grants.grant(actor, address, role, agency))
    where = f" at {grant.agency}" if grant.agency else ""
    emit(grant.as_dict(), f"granted {grant.role}{where} to {grant.address}", as_json=want_json(ctx))


@admin_group.command("revoke")
@common
@click.argument("address")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--agency", default=None, help="The agency of the scoped role to revoke.")
@click.pass_context
def admin_revoke(ctx: click.Context, address: str, role: str, agency: str | None) -> None:
    """Take ROLE away from ADDRESS; the sessions opened under it end."""
    grant = _with_services(ctx, lambda s, actor: s.grants.revoke(actor, address, role, agency))
    where = f" at {grant.agency}" if grant.agency else ""
    emit(grant.as_dict(), f"revoked {grant.role}{where} from {grant.address}",
         as_json=want_json(ctx))  # fmt: skip


@admin_group.command("list")
@common
@click.argument("address", required=False)
@click.pass_context
def admin_list(ctx: click.Context, address: str | None) -> None:
    """Every role grant (or those of ADDRESS)."""
    grants = _with_services(ctx, lambda s, actor: s.grants.list_grants(actor, address))
    rows = [g.as_dict() for g in grants]
    emit(rows, lambda: table(rows, GRANT_COLUMNS), as_json=want_json(ctx))


@admin_group.group("token")
def token_group() -> None:
    """API tokens for automation: scoped, expiring, revocable, shown once."""


@token_group.command("create")
@common
@click.option("--role", required=True, type=click.Choice(ROLES), help="The role it acts as.")
@click.option("--agency", default=None, help="The agency (subtree) of a scoped role.")
@click.option("--name", required=True, help="What the token is for, e.g. 'nightly import'.")
@click.option("--expires-days", default=DEFAULT_DAYS, show_default=True,
              type=click.IntRange(1, MAX_DAYS), help="Days until it stops working.")  # fmt: skip
@click.pass_context
def token_create(
    ctx: click.Context, role: str, agency: str | None, name: str, expires_days: int
) -> None:
    """Create a token; its secret is printed now and never again."""
    made = _with_services(
        ctx,
        lambda s, actor: s.tokens.create(
            actor, role=role, agency=agency, name=name, expires_days=expires_days
        ),
    )
    text = (
        f"token {made.token.id} ({made.token.name}): {made.token.role}"
        f"{' at ' + made.token.agency if made.token.agency else ''},"
        f" expires {made.token.expires_at}\n"
        f"secret (shown once; store it now): {made.secret}"
    )
    emit(made.as_dict(), text, as_json=want_json(ctx))


@token_group.command("list")
@common
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """Every API token (never a secret)."""
    tokens = _with_services(ctx, lambda s, actor: s.tokens.list_tokens(actor))
    rows = [t.as_dict() for t in tokens]
    emit(rows, lambda: table(rows, TOKEN_COLUMNS), as_json=want_json(ctx))


@token_group.command("revoke")
@common
@click.argument("token_id", metavar="ID", type=int)
@click.pass_context
def token_revoke(ctx: click.Context, token_id: int) -> None:
    """Revoke token ID now."""
    token = _with_services(ctx, lambda s, actor: s.tokens.revoke(actor, token_id))
    emit(token.as_dict(), f"revoked token {token.id} ({token.name})", as_json=want_json(ctx))


@admin_group.group("totp")
def totp_group() -> None:
    """The second factor of people signing in: TOTP (RFC 6238) and recovery codes."""


def _write_qr(path: Path, data: bytes) -> None:
    try:
        write_new_file(path, data)
    except FileExistsError:
        raise CliError(f"{path} exists: choose another --qr file") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


@totp_group.command("enrol")
@common
@click.argument("address")
@click.option("--qr", "qr_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="QR code file (.png or .svg; default ADDRESS-totp.png).")  # fmt: skip
@click.pass_context
def totp_enrol(ctx: click.Context, address: str, qr_path: Path | None) -> None:
    """New TOTP secret and recovery codes for ADDRESS (replacing any); confirm it next."""
    path = qr_path or Path(f"{address.strip().lower()}-totp.png")
    if path.exists():
        raise CliError(f"{path} exists: choose another --qr file")
    enrolment = _with_services(ctx, lambda s, actor: s.two_factor.enrol(actor, address))
    svg = path.suffix.lower() == ".svg"
    _write_qr(path, enrolment.qr_svg.encode("utf-8") if svg else enrolment.qr_png)
    text = "\n".join(
        [
            f"TOTP enrolment for {enrolment.address} (pending until confirmed)",
            f"otpauth URI: {enrolment.uri}",
            f"QR code written to {path} (private: delete it once scanned)",
            "recovery codes (each works once; shown only now):",
            *(f"  {code}" for code in enrolment.recovery_codes),
            f"next: barid admin totp confirm {enrolment.address} CODE",
        ]
    )
    emit({**enrolment.as_dict(), "qr_file": str(path)}, text, as_json=want_json(ctx))


@totp_group.command("confirm")
@common
@click.argument("address")
@click.argument("code")
@click.pass_context
def totp_confirm(ctx: click.Context, address: str, code: str) -> None:
    """Make ADDRESS's pending TOTP secret usable: CODE is its current code."""
    _with_services(ctx, lambda s, actor: s.two_factor.confirm(actor, address, code))
    emit({"address": address.strip().lower(), "totp": "confirmed"},
         f"TOTP confirmed for {address.strip().lower()}", as_json=want_json(ctx))  # fmt: skip


@totp_group.command("recovery-codes")
@common
@click.argument("address")
@click.pass_context
def totp_recovery_codes(ctx: click.Context, address: str) -> None:
    """Ten new recovery codes for ADDRESS; the old ones stop working."""
    codes = _with_services(ctx, lambda s, actor: s.two_factor.new_recovery_codes(actor, address))
    emit({"address": address.strip().lower(), "recovery_codes": codes},
         "\n".join(["recovery codes (each works once; shown only now):", *codes]),
         as_json=want_json(ctx))  # fmt: skip


@totp_group.command("status")
@common
@click.argument("address")
@click.pass_context
def totp_status(ctx: click.Context, address: str) -> None:
    """Whether ADDRESS has a confirmed TOTP secret, and recovery codes left."""
    state = _with_services(ctx, lambda s, actor: s.two_factor.status(actor, address))
    left = state["recovery_codes_left"]
    text = f"{state['address']}: totp {state['totp']}, {left} recovery codes left"
    emit(state, text, as_json=want_json(ctx))
