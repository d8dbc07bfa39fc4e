"""The routing policy inside a running gateway: load, watch, reload, rebind, audit.

Owns: keeping `PolicyHolder` current with the newest version in the database
(gateway.store.policy_versions), which every node of a cluster shares. The
node's policy file is one way in: imported as the first version when the
database has none, and applied as a new version when it changes (an edit, SIGHUP
from `barid policy reload`) -- validated first, refused whole when it has
problems. `barid policy apply` and the admin API write versions directly.
Other nodes pick a new version up by PostgreSQL NOTIFY at once, or by polling
the newest id every `POLL_SECONDS` (SQLite, or a lost notice).
Must not: decide anything itself (`policies/` does). Validation and
compilation run in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.store import audit, cluster_state, policy_versions
from gateway.store.db import transaction
from gateway.store.notices import PgListener
from policies.directory import DirectorySnapshot
from policies.holder import PolicyHolder, ReloadResult
from policies.loader import read_source
from policies.problems import PolicyError, Problem

log = logging.getLogger("barid.policy")

POLL_SECONDS = 2.0


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
        self._seen_hash = ""  # the policy file's hash when last looked at
        self.version_id = 0  # the database version running here
        self._lock = asyncio.Lock()
        self._notice = asyncio.Event()
        self._listener = PgListener(policy_versions.CHANNEL, self._on_notice, self._notice.set)
        self._watcher: asyncio.Task[None] | None = None

    @property
    def source(self) -> str:
        """How versions imported from this node's file are named."""
        return f"file:{self.path}"

    @property
    def holder(self) -> PolicyHolder:
        if self._holder is None:
            raise RuntimeError("policy not loaded yet")
        return self._holder

    async def start(self, snapshot: DirectorySnapshot) -> None:
        """First load; raises PolicyStartupError listing every problem.

        The file becomes a new version when the database has none yet, or when
        it changed since it was last imported from here (an edit while the
        gateway was stopped); otherwise the newest version runs.
        """
        async with self._sessions() as session:
            newest = await policy_versions.newest(session)
            from_file = await policy_versions.newest_from(session, self.source)
        current = await asyncio.to_thread(file_hash, self.path)
        self._seen_hash = current
        changed = from_file is not None and current and from_file.sha256 != current
        if newest is None or (changed and newest.sha256 != current):
            try:
                self._holder = await asyncio.to_thread(
                    PolicyHolder.load, self.path, snapshot, self.federation
                )
            except PolicyError as exc:
                await self._record("policy.load", "refused", current, exc.problems, "start")
                raise PolicyStartupError(exc.problems) from None
            await self._write_version(self.path, "start", first=newest is None)
            return
        try:
            self._holder = await asyncio.to_thread(
                PolicyHolder.load, newest.text.encode("utf-8"), snapshot, self.federation
            )
        except PolicyError as exc:
            await self._record("policy.load", "refused", newest.sha256, exc.problems, "start")
            raise PolicyStartupError(exc.problems) from None
        self.version_id = newest.id
        if current and current != newest.sha256:
            log.info(
                "the policy file differs from the running version; it is applied when it changes",
                extra={"version": newest.id, "file": str(self.path)},
            )

    async def _write_version(self, path: Path, actor: str, *, first: bool = False) -> None:
        """Store the file the holder just validated as the newest version."""
        _, _, policy_text = await asyncio.to_thread(read_source, path)
        if policy_versions.sha256_of(policy_text) != self.holder.source_hash:
            # Edited again since it was validated: the next look validates that edit.
            self._seen_hash = ""
            return
        file_digest = await asyncio.to_thread(file_hash, path)
        async with transaction(self._sessions) as session:
            written = await policy_versions.add_version(
                session,
                self._audit_key,
                policy_text=policy_text,
                source=self.source,
                actor=actor,
                only_if_empty=first,
            )
            if written is None:  # another node imported its file first
                newest = await policy_versions.newest(session)
                assert newest is not None
                written = newest
            elif not first:
                await cluster_state.follow_policy_file(session, file_digest)
        if written.sha256 != self.holder.source_hash:
            result = await asyncio.to_thread(self.holder.reload, written.text.encode("utf-8"))
            if not result.ok:
                log.warning("the database's policy does not validate here; keeping the file's")
        self.version_id = written.id

    async def reload(self, actor: str) -> ReloadResult:
        """Re-read the file; apply it as a new version if valid and new, else keep the
        running one (a file identical to the running version changes nothing)."""
        async with self._lock:
            running = self.holder.source_hash
            result = await asyncio.to_thread(self.holder.reload, self.path)
            self._seen_hash = result.attempted_hash
            if result.ok and result.active_hash == running:
                log.info("policy file unchanged; nothing to apply", extra={"by": actor})
            elif result.ok:
                await self._write_version(self.path, actor)
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
        """Apply the file when it changed; else take a newer database version, if any."""
        current = await asyncio.to_thread(file_hash, self.path)
        if current and current != self._seen_hash:
            return await self.reload("file-change")
        await self.sync()
        return None

    async def sync(self) -> bool:
        """Run the newest database version if it is newer than ours; True when swapped."""
        async with self._lock:
            async with self._sessions() as session:
                newest_id = await policy_versions.newest_id(session)
                if newest_id is None or newest_id <= self.version_id:
                    return False
                newest = await policy_versions.get(session, newest_id)
            assert newest is not None
            result = await asyncio.to_thread(self.holder.reload, newest.text.encode("utf-8"))
            if not result.ok:
                log.warning(
                    "policy version does not validate on this node; keeping the running one",
                    extra={
                        "version": newest.id,
                        "problems": [str(p) for p in result.problems[:20]],
                    },
                )
                return False
            self.version_id = newest.id
            log.info("policy version taken", extra={"version": newest.id, "hash": newest.sha256})
            return True

    def start_watching(self, engine: AsyncEngine) -> None:
        """Follow new versions: NOTIFY on PostgreSQL, and polling everywhere."""
        self._listener.start(engine)
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        await self._listener.stop()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    def _on_notice(self, _payload: str) -> None:
        self._notice.set()

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._notice.wait(), POLL_SECONDS)
            self._notice.clear()
            try:
                await self.sync()
            except Exception:
                log.warning("policy version check failed; keeping the running one", exc_info=True)

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
