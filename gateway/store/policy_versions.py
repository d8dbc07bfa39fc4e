"""Routing policy versions in the database: the running policy shared by every node.

Owns: appending a version (text, sha256, who, from where) together with its
"policy.apply" audit event in one transaction, and reading versions back
(newest, by id, history). On PostgreSQL the appending transaction also sends a
NOTIFY on `CHANNEL`, delivered only if it commits, so other nodes reload at
once; on SQLite (one node) they notice by polling the newest id.

Must not: validate policies (`policies/` does, before a version is written) or
swap the running one (gateway.checks.policy does).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import audit
from gateway.store.db import utcnow
from gateway.store.models import AuditEvent, AuditHead, PolicyVersion

CHANNEL = "barid_policy"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A version without its text (for lists); `text` is filled by `get`/`newest`."""

    id: int
    sha256: str
    source: str
    applied_at: str
    applied_by: str
    role: str
    client: str
    text: str = ""


def sha256_of(policy_text: str) -> str:
    return hashlib.sha256(policy_text.encode("utf-8")).hexdigest()


def _info(row: PolicyVersion, with_text: bool) -> VersionInfo:
    return VersionInfo(
        id=row.id,
        sha256=row.sha256,
        source=row.source,
        applied_at=row.applied_at,
        applied_by=row.applied_by,
        role=row.role,
        client=row.client,
        text=row.text if with_text else "",
    )


async def add_version(
    session: AsyncSession,
    audit_key: bytes,
    *,
    policy_text: str,
    source: str,
    actor: str,
    role: str = "system-admin",
    client: str = "local",
    details: Mapping[str, Any] | None = None,
    only_if_empty: bool = False,
    unless_running: bool = False,
) -> VersionInfo | None:
    """Append a version and its audit event in the caller's transaction.

    `only_if_empty`: write only when no version exists yet (the first node to
    start imports its file; the others find it there). `unless_running`: write
    only when the text differs from the newest version's (an identical retry
    writes nothing). Returns None when such a condition kept it from writing.
    """
    # The audit head's row lock orders concurrent writers on PostgreSQL too.
    await session.get(AuditHead, 1, with_for_update=True)
    if only_if_empty and await newest_id(session) is not None:
        return None
    digest = sha256_of(policy_text)
    if unless_running:
        running = await session.scalar(
            select(PolicyVersion.sha256).order_by(PolicyVersion.id.desc()).limit(1)
        )
        if running == digest:
            return None
    row = PolicyVersion(
        sha256=digest,
        text=policy_text,
        source=source,
        applied_at=utcnow(),
        applied_by=actor,
        role=role,
        client=client,
    )
    session.add(row)
    await session.flush()
    await audit.append(
        session,
        audit_key,
        actor=actor,
        action="policy.apply",
        target=source,
        details={
            "sha256": digest,
            "version": row.id,
            "role": role,
            "client": client,
            **(details or {}),
        },
    )
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": str(row.id)},
        )
    return _info(row, with_text=True)


async def newest_id(session: AsyncSession) -> int | None:
    result: int | None = await session.scalar(select(func.max(PolicyVersion.id)))
    return result


async def newest(session: AsyncSession) -> VersionInfo | None:
    row = await session.scalar(select(PolicyVersion).order_by(PolicyVersion.id.desc()).limit(1))
    return None if row is None else _info(row, with_text=True)


async def get(session: AsyncSession, version_id: int) -> VersionInfo | None:
    row = await session.get(PolicyVersion, version_id)
    return None if row is None else _info(row, with_text=True)


async def newest_from(session: AsyncSession, source: str) -> VersionInfo | None:
    """The newest version that came from `source` (e.g. this node's policy file)."""
    row = await session.scalar(
        select(PolicyVersion)
        .where(PolicyVersion.source == source)
        .order_by(PolicyVersion.id.desc())
        .limit(1)
    )
    return None if row is None else _info(row, with_text=False)


async def applied_name(session: AsyncSession, version_id: int) -> str | None:
    """The name given when the version was applied (its "policy.apply" event's
    details), None when none was given."""
    needle = audit.canonical_details({"version": version_id})[1:-1]  # '"version":<id>'
    rows = await session.scalars(
        select(AuditEvent.details).where(
            AuditEvent.action == "policy.apply",
            AuditEvent.details.contains(needle, autoescape=True),
        )
    )
    for raw in rows:
        details = json.loads(raw)
        if details.get("version") == version_id and details.get("name"):
            return str(details["name"])
    return None


async def history(
    session: AsyncSession, *, limit: int = 50, before: int | None = None
) -> list[VersionInfo]:
    """Versions newest first, without their text; `before` pages on (an id)."""
    query = select(PolicyVersion).order_by(PolicyVersion.id.desc()).limit(limit)
    if before is not None:
        query = query.where(PolicyVersion.id < before)
    return [_info(row, with_text=False) for row in (await session.scalars(query)).all()]
