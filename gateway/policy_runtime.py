"""The routing policy inside a running gateway: load, watch, reload, rebind, audit.

Owns: keeping `PolicyHolder` current — at start, when the policy file changes,
on SIGHUP (sent by `barid policy reload`), and when the directory snapshot
changes — and recording every applied or refused version in the audit trail
(content hash, time, who). Must not: decide anything itself; `policies/` does.
Validation and compilation run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import audit
from gateway.store.db import transaction
from policies.directory import DirectorySnapshot
from policies.holder import PolicyHolder, ReloadResult
from policies.problems import PolicyError, Problem

log = logging.getLogger("barid.policy")


class PolicyStartupError(Exception):
    """The configured policy does not validate; the gateway must not start on it."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(f"routing policy has {len(problems)} problem(s)")
        self.problems = tuple(problems)


def file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


class PolicyRuntime:
    def __init__(
        self,
        path: Path,
        federation: Mapping[str, Sequence[str]],
        sessions: async_sessionmaker[AsyncSession],
        audit_key: bytes,
    ) -> None:
        self.path = path
        self.federation = {k: tuple(v) for k, v in federation.items()}
        self._sessions = sessions
        self._audit_key = audit_key
        self._holder: PolicyHolder | None = None
        self._seen_hash = ""
        self._lock = asyncio.Lock()

    @property
    def holder(self) -> PolicyHolder:
        if self._holder is None:
            raise RuntimeError("policy not loaded yet")
        return self._holder

    async def start(self, snapshot: DirectorySnapshot) -> None:
        """First load; raises PolicyStartupError listing every problem."""
        try:
            self._holder = await asyncio.to_thread(
                PolicyHolder.load, self.path, snapshot, self.federation
            )
        except PolicyError as exc:
            await self._record(
                "policy.load", "refused", file_hash(self.path), exc.problems, "start"
            )
            raise PolicyStartupError(exc.problems) from None
        self._seen_hash = self._holder.source_hash
        await self._record("policy.apply", "ok", self._holder.source_hash, (), "start")

    async def reload(self, actor: str) -> ReloadResult:
        """Re-read the file; swap it in whole if valid, else keep the running policy."""
        async with self._lock:
            result = await asyncio.to_thread(self.holder.reload, self.path)
            self._seen_hash = result.attempted_hash
            if result.ok:
                await self._record("policy.apply", "ok", result.active_hash, result.problems, actor)
                log.info("policy applied", extra={"hash": result.active_hash, "by": actor})
            else:
                await self._record(
                    "policy.reload", "refused", result.attempted_hash, result.problems, actor
                )
                log.warning(
                    "policy reload refused; the running policy stays",
                    extra={
                        "hash": result.attempted_hash,
                        "active": result.active_hash,
                        "problems": [str(p) for p in result.problems[:20]],
                    },
                )
            return result

    async def rebind(self, snapshot: DirectorySnapshot) -> ReloadResult:
        async with self._lock:
            result = await asyncio.to_thread(self.holder.rebind, snapshot)
            if not result.ok:
                await self._record(
                    "policy.rebind", "refused", result.active_hash, result.problems, "directory"
                )
                log.warning(
                    "policy no longer validates against the directory; keeping the previous pair",
                    extra={"problems": [str(p) for p in result.problems[:20]]},
                )
            return result

    async def reload_if_changed(self) -> ReloadResult | None:
        current = await asyncio.to_thread(file_hash, self.path)
        if not current or current == self._seen_hash:
            return None
        return await self.reload("file-change")

    async def _record(
        self, action: str, outcome: str, digest: str, problems: Sequence[Problem], actor: str
    ) -> None:
        async with transaction(self._sessions) as session:
            await audit.append(
                session,
                self._audit_key,
                actor=actor,
                action=action,
                target=str(self.path),
                outcome=outcome,
                details={"sha256": digest, "problems": [str(p) for p in problems[:50]]},
            )
