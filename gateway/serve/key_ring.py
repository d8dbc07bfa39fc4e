"""The running gateway's token keys, kept in step with the database's key set.

Owns: `KeyRing`: the keys every part of `barid serve` signs and verifies with,
re-read from the database every few seconds (the directory watcher calls
`refresh`) and at once, at most once a second, when a token names a key id
the ring does not know (`refresh_for_unknown`). A rotation on any node thus
takes effect on every node without a restart. Must not: write keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.signing_keys import apply, read_key_set
from keys.gateway_keys import GatewayKeys

log = logging.getLogger("barid.keys")
UNKNOWN_KEY_MIN_INTERVAL = 1.0


class KeyRing:
    """Start from the keys applied at start-up (gateway.store.signing_keys.load_shared)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], keys: GatewayKeys) -> None:
        self._sessions = sessions
        self._files = keys  # as loaded from the files: the base every set is applied to
        self._keys = keys
        self._lock = asyncio.Lock()
        self._last_forced = 0.0
        self._watchers: list[Callable[[GatewayKeys], None]] = []

    def watch(self, on_change: Callable[[GatewayKeys], None]) -> None:
        """Call `on_change(keys)` whenever the keys change (the admin app's context)."""
        self._watchers.append(on_change)

    def current(self) -> GatewayKeys:
        return self._keys

    def verification_keys(self) -> Mapping[str, ed25519.Ed25519PublicKey]:
        return self._keys.verification_keys

    def current_key_id(self) -> str:
        return self._keys.signing_key_id

    async def refresh(self) -> bool:
        """Re-read the set; True when it changed (the new keys are in use at once)."""
        async with self._lock:
            async with self._sessions() as session:
                key_set = await read_key_set(session, self._keys.master_key)
            if key_set is None:
                return False
            fresh = apply(self._files, key_set)
            if (fresh.signing_key_id, sorted(fresh.verification_keys)) == (
                self._keys.signing_key_id,
                sorted(self._keys.verification_keys),
            ):
                return False
            self._keys = fresh
            for on_change in self._watchers:
                on_change(fresh)
        log.info("token signing keys changed", extra={"current_key_id": fresh.signing_key_id})
        return True

    async def refresh_for_unknown(self) -> bool:
        """`refresh` for a token naming an unknown key id, at most once a second (a
        flood of forged key ids costs one query a second)."""
        now = time.monotonic()
        if now - self._last_forced < UNKNOWN_KEY_MIN_INTERVAL:
            return False
        self._last_forced = now
        try:
            return await self.refresh()
        except Exception:
            log.warning("token key refresh failed; keeping the current keys", exc_info=True)
            return False
