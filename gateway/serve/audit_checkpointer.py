"""The periodic audit checkpoint of `barid serve`: a small task that signs the chain.

Owns: waking every CHECK_SECONDS, asking gateway.store.audit_checkpoints whether
a checkpoint is due (audit.checkpoint_every_events / checkpoint_every_minutes)
and writing it with the gateway's signing key. Must not: stop the gateway or
lose mail when it fails (it logs by class and tries again at the next wake).
Several nodes may race for the same checkpoint: the head lock serialises them
and the second finds none due.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import Settings
from gateway.store import audit_checkpoints
from gateway.store.audit_checkpoints import CheckpointFacts
from gateway.store.db import transaction
from keys.gateway_keys import GatewayKeys

log = logging.getLogger("barid.audit")
CHECK_SECONDS = 30.0
ACTOR = "gateway:checkpoint"


class AuditCheckpointer:
    """Start with `start()`, stop with `await stop()`; `await tick()` does one round."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        keys: GatewayKeys,
        audit_key: bytes,
        *,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self._every_events = settings.audit.checkpoint_every_events
        self._every_seconds = settings.audit.checkpoint_every_minutes * 60
        self._node = settings.server.hostname
        self._sessions = sessions
        self._keys = keys
        self._audit_key = audit_key
        self._check_seconds = check_seconds
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._every_events or self._every_seconds)

    async def tick(self, now: dt.datetime | None = None) -> CheckpointFacts | None:
        """Write a checkpoint when one is due; the one written, else None."""
        moment = now or dt.datetime.now(dt.UTC)
        async with transaction(self._sessions) as session:
            if not await audit_checkpoints.due(
                session,
                every_events=self._every_events,
                every_seconds=self._every_seconds,
                now=moment,
                lock=True,
            ):
                return None
            facts = await audit_checkpoints.write_checkpoint(
                session,
                self._audit_key,
                self._keys.signing_key,
                self._keys.signing_key_id,
                node=self._node,
                actor=ACTOR,
            )
        log.info("audit checkpoint signed at event %d", facts.event_id)
        return facts

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._check_seconds)
            try:
                await self.tick()
            except Exception as exc:  # never the gateway's end; class only (no SQL text)
                log.warning("audit checkpoint failed (%s); trying again", type(exc).__name__)

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
