"""What a CLI command needs: settings, the database engine, the gateway keys.

Owns: opening those resources from the configuration, with clear errors when
Barid was not initialised yet. Must not: create anything (that is `barid init`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from admin.errors import EXIT_USAGE, CliError
from gateway.config import ConfigError, Settings, load_settings
from gateway.logs import node_name
from gateway.store import migrate
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.audit import set_node as set_audit_node
from gateway.store.blobstore import DATABASE_ONLY, BlobStoreError, BlobStores, stores_from_settings
from gateway.store.cluster_state import ClusterMismatch, check_master_key
from gateway.store.db import create_engine, session_factory
from gateway.store.directory import Directory
from gateway.store.signing_keys import load_shared
from keys.cluster_keys import SealError, key_check_value
from keys.gateway_keys import GatewayKeys, derive_key, load_gateway_keys
from keys.key_files import KeyFileError


def settings_from(config: str | None) -> Settings:
    """Settings from --config FILE, else $BARID_CONFIG, else defaults; exit 2 when bad."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise CliError(f"configuration: {exc}", EXIT_USAGE) from None
    set_audit_node(node_name(settings.server.node_id))  # the CLI's audit events name this node
    return settings


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keys: GatewayKeys
    directory: Directory
    blob_stores: BlobStores = DATABASE_ONLY

    @property
    def audit_key(self) -> bytes:
        return derive_key(self.keys.master_key, AUDIT_KEY_PURPOSE)


def _require_initialised(settings: Settings) -> None:
    if settings.database.url:
        return
    db = settings.data_dir / "barid.db"
    if not db.exists():
        raise CliError(
            f"no database at {db}: run `barid init --data-dir {settings.data_dir}` first"
            " (or pass --config)"
        )


async def _check_cluster(
    sessions: async_sessionmaker[AsyncSession], keys: GatewayKeys
) -> GatewayKeys:
    """Before any command writes: this node's master key is the database's (a
    database without the check value gets this node's). Returns the keys with the
    database's token key set applied (gateway.store.signing_keys)."""
    try:
        await check_master_key(sessions, key_check_value(keys.master_key))
        return await load_shared(sessions, keys)
    except (ClusterMismatch, SealError) as exc:
        raise CliError(str(exc)) from None
    except (SQLAlchemyError, OSError) as exc:
        raise CliError(f"database unavailable ({type(exc).__name__})") from None


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[App]:
    _require_initialised(settings)
    try:
        keys = load_gateway_keys(settings.keys_dir)
    except KeyFileError as exc:
        raise CliError(f"gateway keys: {exc}") from None
    engine = create_engine(
        settings.database_url,
        pool_size=settings.database.pool_size,
        connect_timeout=settings.database.connect_timeout_seconds,
    )
    try:
        try:
            current = await migrate.current_revision(engine)
        except (SQLAlchemyError, OSError) as exc:
            raise CliError(f"database unavailable ({type(exc).__name__})") from None
        if current != migrate.head_revision():
            raise CliError(
                f"database schema is at {current or 'nothing'}, expected"
                f" {migrate.head_revision()}: run `barid init` to migrate"
            )
        sessions = session_factory(engine)
        keys = await _check_cluster(sessions, keys)
        try:
            stores = stores_from_settings(settings)
        except BlobStoreError as exc:
            raise CliError(f"blob store: {exc}") from None
        try:
            yield App(
                settings=settings,
                engine=engine,
                sessions=sessions,
                keys=keys,
                directory=Directory(sessions, derive_key(keys.master_key, AUDIT_KEY_PURPOSE)),
                blob_stores=stores,
            )
        finally:
            await stores.close()
    finally:
        await engine.dispose()
