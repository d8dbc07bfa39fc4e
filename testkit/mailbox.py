"""Helpers shared by the tests/store/mailbox/test_mailbox_*.py modules (no tests here)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.store import migrate
from gateway.store.blobs import BlobCipher
from gateway.store.db import create_engine, session_factory
from gateway.store.directory import AgencyInput, Directory, EmployeeInput
from gateway.store.mailbox.notify import MailboxNotifier
from gateway.store.mailbox.store import MailboxStore

AUDIT_KEY = os.urandom(32)
ALICE = "alice@moh.gov.example"
BOB = "bob@moh.gov.example"
WAIT = 5.0  # upper bound for anything awaited in these tests


@dataclass
class MailEnv:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cipher: BlobCipher
    notifier: MailboxNotifier
    store: MailboxStore
    alice: int  # employee ids
    bob: int


async def seed_employees(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """An agency with two employees; their ids."""
    directory = Directory(sessions, AUDIT_KEY)
    await directory.add_agency(
        AgencyInput("MOH", "Health", "الصحة", "ministry", "moh.gov.example"), actor="t"
    )
    ids = []
    for address, name in ((ALICE, "Alice"), (BOB, "Bob")):
        await directory.add_employee(EmployeeInput(address, "MOH", name), actor="t")
        found = await directory.active_employee_id(address)
        assert found is not None
        ids.append(found)
    return ids[0], ids[1]


@asynccontextmanager
async def mail_env(url: str, *, notifier: MailboxNotifier | None = None) -> AsyncIterator[MailEnv]:
    """A migrated database with two employees and a MailboxStore on it."""
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        sessions = session_factory(engine)
        alice, bob = await seed_employees(sessions)
        cipher = BlobCipher(os.urandom(32))
        notifier = notifier or MailboxNotifier()
        store = MailboxStore(sessions, cipher, notifier)
        yield MailEnv(engine, sessions, cipher, notifier, store, alice, bob)
    finally:
        await engine.dispose()


def mail(marker: str = "hello", *, subject: str = "Test") -> bytes:
    return (f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: {subject}\r\n\r\nBody {marker}\r\n").encode()


async def inbox(env: MailEnv, employee_id: int | None = None) -> int:
    employee = env.alice if employee_id is None else employee_id
    await env.store.ensure_folders(employee)
    return (await env.store.get_mailbox(employee, "INBOX")).id


async def wait_set(event: asyncio.Event, seconds: float = WAIT) -> bool:
    """True when `event` is set within `seconds`."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
