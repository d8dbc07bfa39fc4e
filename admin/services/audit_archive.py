"""Audit archive use cases: export a signed, offline-verifiable archive; check one.

Owns: `export_archive` (for unscoped readers of the audit trail: system-admin,
security-auditor; a scoped actor gets OutOfScope) and `verify_archive` (offline,
admin.services.audit_archive_check). An export first signs a checkpoint of the
chain (its declared end, recorded as an audit event naming the actor), then
writes into DEST (a new or empty directory, mode 0700, files 0600):

- events.jsonl: the events as JSON lines with their prev_mac and MAC, from the
  latest checkpoint at or before the first event at `since` (or event 1) to the
  end checkpoint, so the archive starts and ends at signed checkpoints;
- checkpoints.jsonl: every checkpoint in that range;
- keys.json: the public verification keys, as /.well-known/barid/keys.json;
- manifest.json: format, range, counts, the SHA-256 of each part;
- manifest.sig: the Ed25519 signature of manifest.json by the signing key.

Must not: put secrets in the archive (it holds no private or master key); leave
a half-written archive looking complete (the manifest is written last).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from admin.context import App
from admin.services import audit as audit_service
from admin.services.actor import Actor, Area
from admin.services.audit_archive_check import (
    ARCHIVE_FORMAT,
    CHECKPOINTS,
    EVENTS,
    KEYS,
    MANIFEST,
    PARTS,
    SIGNATURE,
    ArchiveCheck,
    sha256_file,
    verify_archive,
)
from admin.services.errors import InvalidInput, Unavailable
from admin.services.model import Frozen
from admin.services.scope import check
from gateway.store import audit_checkpoints
from gateway.store.access_trail import parse_since
from gateway.store.db import utcnow
from gateway.store.errors import DATABASE_ERRORS
from gateway.store.models import AuditEvent
from gateway.verification.service import public_key_b64url

__all__ = ["ArchiveCheck", "ArchiveReport", "export_archive", "verify_archive"]

BATCH = 2000


class ArchiveReport(Frozen):
    path: str
    since: str  # the stored-time text `since` resolved to
    first_event: int
    end_event: int
    events: int
    checkpoints: int
    key_id: str


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, problems=[message])


def _prepare(dest: str) -> Path:
    root = Path(dest)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise _invalid(f"{dest}: exists and is not an empty directory")
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise _invalid(f"{dest}: cannot create ({exc.strerror})") from None
    return root


def _open_private(path: Path) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n"


async def _start_event(session: AsyncSession, since: str, end: int) -> int:
    """The latest checkpointed event at or before the first event at `since`, else 1."""
    first = await session.scalar(
        select(func.min(AuditEvent.id)).where(AuditEvent.at >= since, AuditEvent.id <= end)
    )
    anchor = await audit_checkpoints.last_checkpoint(session, at_or_before=first or end)
    return anchor.event_id if anchor is not None else 1


async def _write_events(session: AsyncSession, path: Path, start: int, end: int) -> int:
    count, last = 0, start - 1
    with _open_private(path) as out:
        while last < end:
            rows = (
                await session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.id > last, AuditEvent.id <= end)
                    .order_by(AuditEvent.id)
                    .limit(BATCH)
                )
            ).all()
            if not rows:
                break
            for ev in rows:
                out.write(_line({
                    "id": ev.id, "at": ev.at, "actor": ev.actor, "action": ev.action,
                    "target": ev.target, "outcome": ev.outcome, "details": ev.details,
                    "prev_mac": ev.prev_mac, "mac": ev.mac,
                }))  # fmt: skip
            count, last = count + len(rows), rows[-1].id
    return count


def _write_keys(app: App, path: Path) -> None:
    current = app.keys.signing_key_id
    keys = app.keys.verification_keys
    listed = [
        {
            "kid": kid,
            "alg": "Ed25519",
            "public_key": public_key_b64url(keys[kid]),
            "status": "current" if kid == current else "retired",
        }
        for kid in sorted(keys, key=lambda kid: (kid != current, kid))
    ]
    with _open_private(path) as out:
        out.write(json.dumps({"keys": listed}, indent=2) + "\n")


def _sign_manifest(app: App, root: Path, manifest: dict[str, Any]) -> None:
    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    signature = audit_checkpoints.b64url(app.keys.signing_key.sign(raw))
    sig = {"alg": "Ed25519", "key_id": app.keys.signing_key_id, "signature": signature}
    with _open_private(root / SIGNATURE) as out:
        out.write(json.dumps(sig, indent=2) + "\n")
    with open(os.open(root / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(raw)


async def export_archive(
    actor: Actor, app: App, since: str, dest: str, *, now: dt.datetime | None = None
) -> ArchiveReport:
    """Sign a checkpoint, then write the events since `since` (ISO time or a span
    back such as 7d) with their checkpoints, keys and a signed manifest to `dest`."""
    check(actor, Area.AUDIT, write=False, path=None)
    try:
        cutoff = parse_since(since, now or dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise _invalid(f"since: {exc}") from None
    root = _prepare(dest)
    end = await audit_service.signed_checkpoint(actor, app)
    try:
        async with app.sessions() as session:
            start = await _start_event(session, cutoff, end.event_id)
            events = await _write_events(session, root / EVENTS, start, end.event_id)
            cps = [
                c
                for c in await audit_checkpoints.checkpoints(session, from_event=start)
                if c.event_id <= end.event_id
            ]
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    with _open_private(root / CHECKPOINTS) as out:
        out.writelines(_line(c.as_dict()) for c in cps)
    _write_keys(app, root / KEYS)
    manifest = {
        "format": ARCHIVE_FORMAT,
        "created_at": utcnow(),
        "node": app.settings.server.hostname,
        "since": cutoff,
        "first_event": start,
        "end_event": end.event_id,
        "end_mac": end.event_mac,
        "events": events,
        "checkpoints": len(cps),
        "parts": {name: sha256_file(root / name) for name in PARTS},
    }
    _sign_manifest(app, root, manifest)
    return ArchiveReport(
        path=str(root),
        since=cutoff,
        first_event=start,
        end_event=end.event_id,
        events=events,
        checkpoints=len(cps),
        key_id=app.keys.signing_key_id,
    )
