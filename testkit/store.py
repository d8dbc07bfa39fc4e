"""Helpers shared by the tests/store/test_store_*.py modules (no tests here)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.model.message import Document, Recipient, Stamp, StampedCopy, Submission
from gateway.store import migrate
from gateway.store.db import create_engine, session_factory
from gateway.store.directory import AgencyInput, Directory, EmployeeInput
from gateway.store.messages import MessageStore
from gateway.store.models import (
    Blob,
    DeliveryQueueEntry,
    Message,
    MessageCopy,
    MessageDocument,
    RegistryCounter,
)
from policies.directory import Clearance

MASTER = os.urandom(32)
AUDIT_KEY = os.urandom(32)
CONNECT_TIMEOUT = 60.0  # seconds
SENDER = "sender@moh.gov.example"


@dataclass
class StoreEnv:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: MessageStore
    directory: Directory


async def seed(directory: Directory) -> None:
    await directory.add_agency(
        AgencyInput("MOH", "Health", "الصحة", "ministry", "moh.gov.example"), actor="t"
    )
    await directory.add_employee(EmployeeInput(SENDER, "MOH", "Sender"), actor="t")


@asynccontextmanager
async def store_env(
    url: str, *, seeded: bool = True, pool_size: int = 5
) -> AsyncIterator[StoreEnv]:
    # Twenty concurrent accepts open their PostgreSQL connections at once; on a
    # loaded machine that takes longer than the production connect timeout.
    engine = create_engine(url, pool_size=pool_size, connect_timeout=CONNECT_TIMEOUT)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    env = StoreEnv(
        engine, sessions, MessageStore(sessions, MASTER, AUDIT_KEY), Directory(sessions, AUDIT_KEY)
    )
    try:
        if seeded:
            await seed(env.directory)
        yield env
    finally:
        await engine.dispose()


def recipients(n: int = 3, *, remote: int = 1) -> tuple[Recipient, ...]:
    local = [Recipient(f"r{i}@moh.gov.example", True) for i in range(n - remote)]
    far = [Recipient(f"p{i}@krg.gov.example", False, peer="krg") for i in range(remote)]
    return (*local, *far)


def submission(
    *, size: int = 2000, n_recipients: int = 3, subject: str = "Quarterly budget"
) -> Submission:
    doc = os.urandom(512)
    body = os.urandom(max(size - 200, 0)).hex().encode()[: max(size - 200, 0)]
    raw = b"From: " + SENDER.encode() + b"\r\nSubject: x\r\n\r\n" + body + b"\r\n"
    return Submission(
        sender_address=SENDER,
        sender_code="MOH-000001-X",
        sender_agency="MOH",
        sender_name_en="Sender",
        sender_name_ar="المرسل",
        agency_name_en="Health",
        agency_name_ar="الصحة",
        classification=Clearance.CONFIDENTIAL,
        subject=subject,
        raw=raw,
        documents=(
            Document("letter.pdf", "application/pdf", doc, hashlib.sha256(doc).hexdigest()),
        ),
        recipients=recipients(n_recipients, remote=1 if n_recipients > 1 else 0),
        received_at=dt.datetime.now(dt.UTC),
        client_address="192.0.2.10",
    )


def stamper(sub: Submission) -> tuple[list[str], Callable[[str, dt.datetime], Stamp]]:
    """A stamp function for `sub`, and the list of registry numbers it was called with."""
    calls: list[str] = []

    def stamp(registry: str, issued_at: dt.datetime) -> Stamp:
        calls.append(registry)
        copies = tuple(
            StampedCopy(
                recipient=r.address,
                trace_code=secrets.token_hex(8),
                prefix=f"PREFIX {registry} {r.address}\r\n".encode(),
                suffix=f"\r\nSUFFIX {r.address}\r\n".encode(),
            )
            for r in sub.recipients
        )
        return Stamp(
            registry=registry,
            issued_at=issued_at,
            token="tok-" + registry,
            verify_url="https://verify.example/v/tok",
            copies=copies,
            certificate={"key_id": "abcd1234abcd1234"},
        )

    return calls, stamp


async def counts(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    result: dict[str, int] = {}
    async with sessions() as s:
        for model in (Blob, Message, MessageDocument, MessageCopy, DeliveryQueueEntry):
            value = await s.scalar(select(func.count()).select_from(model))
            result[model.__tablename__] = int(value or 0)
        serials = await s.scalar(select(func.sum(RegistryCounter.next_serial - 1)))
        result["serials"] = int(serials or 0)
    return result
