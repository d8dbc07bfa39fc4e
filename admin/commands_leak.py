"""`barid leak trace|verify-case`: which copy leaked, and its case file checked offline.

Owns: these commands' options and output. Must not: hold the use case; `trace`
calls admin.services.leak_case.trace_with_case as the local system administrator,
`verify-case` runs admin.services.leak_case.verify_case (no configuration,
database or key needed).
"""

from __future__ import annotations

import click

from admin.cli import common, want_json
from admin.errors import CliError
from admin.output import emit
from admin.service_call import call
from admin.services import leak_case
from admin.services.leaks import CopyCustody, LeakTrace


def register(cli: click.Group) -> None:
    cli.add_command(leak_group)


@click.group("leak")
def leak_group() -> None:
    """Leak investigation: from a trace code, a leaked copy, a document or a photo to the
    copy."""


def _copy_lines(copy: CopyCustody) -> list[str]:
    delivered = f"{copy.state} via {copy.target}"
    if copy.delivered_at:
        delivered += f" at {copy.delivered_at}"
    lines = [f"copy      {copy.recipient}  trace {copy.trace_code}  {delivered}"]
    lines += [
        f"  opened  {a.at}  {a.employee}  {a.protocol}  from {a.client}  ({a.mailbox})"
        for a in copy.accesses
    ] or ["  opened  never (no body fetch in the access trail)"]
    lines.append(f"  forwards: {', '.join(copy.forwards) or 'none: ' + copy.forwards_note}")
    return lines


def _text(trace: LeakTrace) -> str:
    lines = [f"matched   {trace.matched_by}"]
    if trace.verified:
        lines.append(f"verified  {trace.verified}")
    for m in trace.messages:
        lines.append(f"message   {m.registry}  {m.classification}  issued by {m.agency}")
        lines.append(f"accepted  {m.accepted_at}  from {m.sender}  client {m.accepted_from}")
    if trace.note:
        lines.append(f"note      {trace.note}")
    for copy in trace.copies:
        lines += _copy_lines(copy)
    return "\n".join(lines)


@leak_group.command("trace")
@common
@click.argument("value", metavar="INPUT")
@click.option(
    "--case-file", "case_dir", default=None, metavar="DIR",
    help="Also write a signed case file into DIR (a new or empty directory): case.json,"
    " its PDF summary case.pdf in Arabic and English, the signature and the public keys.",
)  # fmt: skip
@click.pass_context
def leak_trace(ctx: click.Context, value: str, case_dir: str | None) -> None:
    """INPUT is a trace code as typed from a printout (case and confusable characters
    forgiven), a leaked copy (.eml), a leaked document file, or a photo or scan of a
    printed marked page (PNG or JPEG: its per-copy QR code is read). Shows the message,
    the recipient copy (or, for a document, every copy that held it) and the chain
    of custody. Exit 1 with "no copy matches" when nothing (or more than one copy)
    matches. Every trace is an audit event (leak.trace)."""
    done = call(ctx, lambda actor, app: leak_case.trace_with_case(actor, app, value, case_dir))
    text = _text(done.trace)
    if done.case_dir:
        text += (f"\ncase file written to {done.case_dir} (case.json, case.pdf),"
                 f" signed by key {done.key_id}")  # fmt: skip
    emit(done.model_dump(mode="json"), text, as_json=want_json(ctx))


@leak_group.command("verify-case")
@common
@click.argument("case_dir", metavar="DIR")
@click.option(
    "--keys", "trusted_keys", default=None, type=click.Path(dir_okay=False),
    help="Trust these public keys (a copy of the gateway's published"
    " /.well-known/barid/keys.json) instead of the case dir's keys.json.",
)  # fmt: skip
@click.pass_context
def leak_verify_case(ctx: click.Context, case_dir: str, trusted_keys: str | None) -> None:
    """Check a case file offline: its signature, by a key of the case dir's keys.json
    (or of --keys), and that the PDF summary (case.pdf) is the one it lists."""
    checked = leak_case.verify_case(case_dir, trusted_keys=trusted_keys)
    result = checked.model_dump()
    if not checked.ok:
        reason = f"case file broken: {checked.problems[0]}"
        raise CliError(reason, details={k: v for k, v in result.items() if k != "ok"})
    text = (f"case file intact: {' and '.join(checked.files)} signed by key {checked.key_id}"
            f" (keys from {checked.keys_from})")  # fmt: skip
    emit(result, text, as_json=want_json(ctx))
