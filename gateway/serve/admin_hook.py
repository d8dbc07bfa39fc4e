"""The hook through which `barid serve` gets the admin listener's app from `admin`.

Owns: `AdminResources` (what the gateway has opened that the management plane
needs: settings, database, keys, directory, the login throttle shared with
SMTP and IMAP) and the factory's type. The gateway calls the factory once,
after its own services are up, and serves the app on the admin listener
(gateway.serve.listeners.start_admin_listener). Must not: import `admin`; the
factory is passed in by the command that starts the gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from gateway.config import Settings
from gateway.intake.login import Authenticator
from gateway.store.blobstore import DATABASE_ONLY, BlobStores
from gateway.store.directory import Directory
from keys.gateway_keys import GatewayKeys


@dataclass(frozen=True)
class AdminResources:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    keys: GatewayKeys
    directory: Directory
    login_throttle: Authenticator
    blob_stores: BlobStores = DATABASE_ONLY  # where documents outside the database live
    # Register a callback for new token keys (a rotation on any node; gateway.serve.key_ring).
    watch_keys: Callable[[Callable[[GatewayKeys], None]], None] | None = None


AdminAppFactory = Callable[[AdminResources], ASGIApp]
