"""The token signing key set in the database, shared by every node of a cluster.

Owns: publishing a node's key files as the set when the database has none (a new
or upgraded database), reading the set (the current key opened with the master
key), rotating it in one transaction, and applying it over the keys a node
loaded from its files. The database is the authority: a node whose files are
older signs with the database's current key and verifies every key it lists.
Must not: write key files (keys.gateway_keys does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.cluster_models import SigningKey
from gateway.store.db import transaction, utcnow
from keys.cluster_keys import open_signing_key, public_raw, seal_signing_key
from keys.gateway_keys import GatewayKeys, key_id

CURRENT, RETIRED = "current", "retired"


@dataclasses.dataclass(frozen=True)
class KeySet:
    """The database's set: the current key (opened) and every public key by id."""

    current_id: str
    current: ed25519.Ed25519PrivateKey
    public: Mapping[str, ed25519.Ed25519PublicKey]

    @property
    def version(self) -> tuple[str, ...]:
        """Changes whenever a key is added or the current one changes."""
        return (self.current_id, *sorted(self.public))


async def publish_if_empty(sessions: async_sessionmaker[AsyncSession], keys: GatewayKeys) -> bool:
    """Record this node's keys as the set when the database holds none; True if it did."""
    async with sessions() as session:
        if await session.scalar(select(SigningKey.key_id).limit(1)) is not None:
            return False
    now = utcnow()
    rows = [
        {"key_id": kid, "public_key": public_raw(pub), "sealed_private": None,
         "status": RETIRED, "created_at": now}
        for kid, pub in keys.retired_signing_keys.items() if kid != keys.signing_key_id
    ]  # fmt: skip
    rows.append({"key_id": keys.signing_key_id, "public_key": public_raw(keys.signing_public_key),
                 "sealed_private": seal_signing_key(keys.master_key, keys.signing_key),
                 "status": CURRENT, "created_at": now})  # fmt: skip
    try:
        async with transaction(sessions) as session:
            await session.execute(insert(SigningKey), rows)
    except IntegrityError:
        return False  # another node published at the same moment
    return True


async def read_key_set(session: AsyncSession, master: bytes) -> KeySet | None:
    """The set, None when the database holds none. SealError (keys.cluster_keys) when
    the current key does not open with `master`."""
    rows = (await session.execute(select(SigningKey))).scalars().all()
    current = [row for row in rows if row.status == CURRENT]
    if not current or current[0].sealed_private is None:
        return None
    private = open_signing_key(master, current[0].key_id, current[0].sealed_private)
    public = {
        row.key_id: ed25519.Ed25519PublicKey.from_public_bytes(row.public_key) for row in rows
    }
    return KeySet(current[0].key_id, private, MappingProxyType(public))


async def rotate(
    session: AsyncSession, master: bytes
) -> tuple[str, str, ed25519.Ed25519PrivateKey]:
    """Retire the current key and make a new one, in the caller's transaction:
    (old id, new id, new private key). Concurrent rotations are serialised by the
    row lock on the current key (PostgreSQL) or the write lock (SQLite)."""
    old_id = await session.scalar(
        select(SigningKey.key_id).where(SigningKey.status == CURRENT).with_for_update()
    )
    new = ed25519.Ed25519PrivateKey.generate()
    new_id = key_id(new.public_key())
    await session.execute(
        update(SigningKey).where(SigningKey.status == CURRENT)
        .values(status=RETIRED, sealed_private=None)
    )  # fmt: skip
    await session.execute(
        insert(SigningKey).values(key_id=new_id, public_key=public_raw(new.public_key()),
                                  sealed_private=seal_signing_key(master, new),
                                  status=CURRENT, created_at=utcnow())
    )  # fmt: skip
    return str(old_id or ""), new_id, new


def apply(keys: GatewayKeys, key_set: KeySet | None) -> GatewayKeys:
    """`keys` signing with the set's current key and verifying every key of the set
    (and the retired keys of this node's files)."""
    if key_set is None:
        return keys
    retired = dict(keys.retired_signing_keys)
    if keys.signing_key_id != key_set.current_id:
        retired[keys.signing_key_id] = keys.signing_public_key
    retired.update({k: v for k, v in key_set.public.items() if k != key_set.current_id})
    return dataclasses.replace(
        keys,
        signing_key=key_set.current,
        signing_key_id=key_set.current_id,
        retired_signing_keys=MappingProxyType(retired),
    )


async def load_shared(sessions: async_sessionmaker[AsyncSession], keys: GatewayKeys) -> GatewayKeys:
    """`keys` with the database's set applied (published first when it has none)."""
    await publish_if_empty(sessions, keys)
    async with sessions() as session:
        return apply(keys, await read_key_set(session, keys.master_key))
