"""`KeyRing`: a token naming an unknown key id re-reads the key set at most once a second."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import load_settings
from gateway.serve.key_ring import UNKNOWN_KEY_MIN_INTERVAL, KeyRing
from gateway.store import signing_keys
from gateway.store.db import create_engine, session_factory, writing
from gateway.store.signing_keys import load_shared
from keys.gateway_keys import load_gateway_keys


async def rotate(sessions: async_sessionmaker[AsyncSession], master: bytes) -> str:
    """What `barid keys rotate` does to the database, on another node."""
    async with writing(sessions) as session:
        return (await signing_keys.rotate(session, master))[1]


def test_unknown_key_ids_re_read_the_set_at_most_once_a_second(barid: Any, tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data" / "barid.toml")

    async def go() -> None:
        engine = create_engine(settings.database_url)
        try:
            sessions = session_factory(engine)
            ring = KeyRing(
                sessions, await load_shared(sessions, load_gateway_keys(settings.keys_dir))
            )
            first = ring.current_key_id()
            seen: list[str] = []
            ring.watch(lambda keys: seen.append(keys.signing_key_id))  # as the admin app does
            assert not await ring.refresh()  # nothing changed
            new = await rotate(sessions, ring.current().master_key)
            assert await ring.refresh_for_unknown()
            assert ring.current_key_id() == new and first in ring.verification_keys()
            newer = await rotate(sessions, ring.current().master_key)
            assert not await ring.refresh_for_unknown()  # too soon: no query
            assert ring.current_key_id() == new
            await asyncio.sleep(UNKNOWN_KEY_MIN_INTERVAL + 0.05)
            assert await ring.refresh_for_unknown()
            assert ring.current().signing_key_id == newer
            assert set(ring.verification_keys()) == {first, new, newer}
            assert seen == [new, newer]
        finally:
            await engine.dispose()

    asyncio.run(go())
