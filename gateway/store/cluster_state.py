"""The facts every node of a cluster must agree with, kept in `cluster_values`.

Owns: the master-key check (the first node records its check value; every other
node compares before it writes anything) and the recorded digests of the
cluster-wide configuration parts (policy, peers, mail servers), compared at
start and replaced only on purpose (`barid cluster adopt-config`). Must not:
compute the values (keys.cluster_keys and gateway.config.cluster_digest do).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.cluster_models import ClusterValue
from gateway.store.db import transaction, utcnow

KEY_CHECK = "master_key_check"
CONFIG_PREFIX = "config_digest:"
KEY_MISMATCH = "this node's master key does not match the database's: join with `barid init --join`"


class ClusterMismatch(Exception):
    """This node disagrees with the cluster; the message is one line for the operator."""


async def read_values(session: AsyncSession, prefix: str = "") -> dict[str, str]:
    rows = await session.execute(
        select(ClusterValue.name, ClusterValue.value).where(ClusterValue.name.startswith(prefix))
    )
    return {name: value for name, value in rows.all()}


async def _record_missing(
    sessions: async_sessionmaker[AsyncSession], values: Mapping[str, str]
) -> dict[str, str]:
    """Insert the values not recorded yet; return what the database holds for them
    afterwards (another node may have won a race: its values are returned)."""
    async with sessions() as session:
        stored = {k: v for k, v in (await read_values(session)).items() if k in values}
    missing = {k: v for k, v in values.items() if k not in stored}
    if not missing:
        return stored
    try:
        async with transaction(sessions) as session:
            now = utcnow()
            for name, value in missing.items():
                await session.execute(
                    insert(ClusterValue).values(name=name, value=value, updated_at=now)
                )
    except IntegrityError:
        pass  # recorded concurrently: read what the winner wrote
    async with sessions() as session:
        return {k: v for k, v in (await read_values(session)).items() if k in values}


async def check_master_key(sessions: async_sessionmaker[AsyncSession], check: str) -> bool:
    """Raise ClusterMismatch unless the database's check value is `check`; a database
    without one (new, or upgraded) gets this node's. True when it was recorded now."""
    async with sessions() as session:
        before = (await read_values(session, KEY_CHECK)).get(KEY_CHECK)
    if before is not None:
        if before != check:
            raise ClusterMismatch(KEY_MISMATCH)
        return False
    stored = await _record_missing(sessions, {KEY_CHECK: check})
    if stored.get(KEY_CHECK) != check:
        raise ClusterMismatch(KEY_MISMATCH)
    return True


async def stored_master_check(sessions: async_sessionmaker[AsyncSession]) -> str | None:
    async with sessions() as session:
        return (await read_values(session, KEY_CHECK)).get(KEY_CHECK)


async def check_config(
    sessions: async_sessionmaker[AsyncSession], digests: Mapping[str, str]
) -> list[str]:
    """Raise ClusterMismatch naming every part whose digest differs from the recorded
    one; parts never recorded get this node's digest. Returns the parts recorded now."""
    wanted = {CONFIG_PREFIX + part: digest for part, digest in digests.items()}
    async with sessions() as session:
        before = await read_values(session, CONFIG_PREFIX)
    stored = await _record_missing(sessions, wanted)
    differ = sorted(k.removeprefix(CONFIG_PREFIX) for k, v in wanted.items() if stored[k] != v)
    if differ:
        raise ClusterMismatch(
            f"this node's {', '.join(differ)} differ(s) from the cluster's: copy them from"
            " another node, or run `barid cluster adopt-config` to make this node's the"
            " cluster's"
        )
    return sorted(k.removeprefix(CONFIG_PREFIX) for k in wanted if k not in before)


async def adopt_config(session: AsyncSession, digests: Mapping[str, str]) -> dict[str, str]:
    """Record `digests` as the cluster's, in the caller's transaction; returns the
    digests they replace (part -> old digest, "" when none)."""
    before = await read_values(session, CONFIG_PREFIX)
    await session.execute(delete(ClusterValue).where(ClusterValue.name.startswith(CONFIG_PREFIX)))
    now = utcnow()
    for part, digest in digests.items():
        await session.execute(
            insert(ClusterValue).values(name=CONFIG_PREFIX + part, value=digest, updated_at=now)
        )
    return {part: before.get(CONFIG_PREFIX + part, "") for part in digests}
