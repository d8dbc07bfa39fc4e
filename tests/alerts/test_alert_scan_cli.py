"""`barid alerts scan` files alerts into the security mailboxes through the gateway's
own mailer (the CLI, on SQLite and PostgreSQL): the raised alert lands once in the
agency's security INBOX, DKIM-signed with the gateway's key; a second scan raises
and files nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import dkim
from sqlalchemy import select

from admin.context import open_app
from gateway.config import load_settings
from gateway.store import audit
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.db import transaction
from gateway.store.directory import AgencyInput, EmployeeInput
from gateway.store.mailbox.notify import MailboxNotifier
from gateway.store.mailbox.store import MailboxStore
from gateway.store.models import MailboxMessage
from keys.dkim_dns import dkim_records
from keys.gateway_keys import derive_key
from testkit.cli import ok

SECURITY = "security@moh.gov.xx"
CLERK = "clerk@moh.gov.xx"


def prepare(cli: Any) -> None:
    """MOH with its security mailbox and a clerk refused by policy ten times."""

    async def go() -> None:
        settings = load_settings(None, environ=cli.env)
        async with open_app(settings) as app:
            await app.directory.add_agency(
                AgencyInput("MOH", "Health", "الصحة", "ministry", "moh.gov.xx"), actor="t"
            )
            for address in (SECURITY, CLERK):
                await app.directory.add_employee(EmployeeInput(address, "MOH", "E"), actor="t")
            async with transaction(app.sessions) as session:
                for _ in range(10):
                    await audit.append(session, app.audit_key, actor="submission",
                                       action="message.reject", target=CLERK, outcome="refused",
                                       details={"reason": "policy", "rule": "no-secret-out"})  # fmt: skip

    asyncio.run(go())


def security_inbox(cli: Any) -> tuple[list[bytes], dict[bytes, bytes]]:
    """The security mailbox's INBOX, and the DKIM records `barid dkim dns` publishes."""

    async def go() -> tuple[list[bytes], dict[bytes, bytes]]:
        settings = load_settings(None, environ=cli.env)
        async with open_app(settings) as app:
            cipher = BlobCipher(derive_key(app.keys.master_key, BLOB_KEK_PURPOSE))
            store = MailboxStore(app.sessions, cipher, MailboxNotifier())
            owner = await app.directory.active_employee_id(SECURITY)
            assert owner is not None
            await store.ensure_folders(owner)
            box = (await store.get_mailbox(owner, "INBOX")).id
            async with app.sessions() as session:
                contents = (
                    await session.scalars(
                        select(MailboxMessage.content_id).where(MailboxMessage.mailbox_id == box)
                    )
                ).all()
            found = [await store.load_bytes(content) for content in contents]
            records = dkim_records(app.keys, settings.keys.dkim_selector, "moh.gov.xx")
            return found, {f"{r.name}.".encode(): r.value.encode() for r in records}

    return asyncio.run(go())


def test_scan_files_the_alert_once_signed(barid_any: Any) -> None:
    cli = barid_any
    cli.env["BARID_ALERTS__SECURITY_MAILBOXES"] = f"MOH={SECURITY}"
    prepare(cli)
    lines = ok(cli("alerts", "scan")).rstrip("\n").split("\n")
    assert lines[-1].endswith("1 alerts raised, 1 alert messages filed"), lines
    assert "policy-denials  " + CLERK in lines[0]
    [raw], records = security_inbox(cli)
    assert b"Barid-Alert-Kind: policy-denials" in raw

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    assert [dkim.DKIM(raw).verify(idx=i, dnsfunc=lookup) for i in range(2)] == [True, True]
    again = ok(cli("alerts", "scan", "--json"))
    assert again["raised"] == [] and again["filed"] == 0
    assert len(security_inbox(cli)[0]) == 1
