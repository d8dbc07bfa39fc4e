"""The mailbox store's transactions: one write scope or one read, database faults named.

Owns: `StoreBase` (sessions, blob cipher, notifier, the SQLite write lock) with
`writing` (notices only after the commit, NOTIFY inside it on PostgreSQL) and
`reading`; database errors become `StoreUnavailable`. Must not: know tables.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.blobs import BlobCipher
from gateway.store.db import sqlite_write_lock, transaction
from gateway.store.errors import DATABASE_ERRORS, database_trouble
from gateway.store.mailbox.notify import MailboxNotifier
from gateway.store.mailbox.writes import WriteScope


class StoreBase:
    """What every part of the mailbox store shares."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: BlobCipher,
        notifier: MailboxNotifier,
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self.notifier = notifier
        self._write_lock = sqlite_write_lock(sessions)
        bind = sessions.kw.get("bind")
        self._postgres = getattr(getattr(bind, "dialect", None), "name", "") == "postgresql"

    @contextlib.asynccontextmanager
    async def writing(self, operation: str) -> AsyncIterator[WriteScope]:
        """One write transaction; notices for the mailboxes it touched go out after
        the commit. Database errors become StoreUnavailable."""
        scope = WriteScope(self)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._write_lock is not None:
                    await stack.enter_async_context(self._write_lock)
                scope.session = await stack.enter_async_context(transaction(self._sessions))
                yield scope
                if scope.touched and self._postgres:
                    await self.notifier.publish_in(scope.session, scope.touched)
        except IntegrityError:
            raise  # a conflict (e.g. a name taken meanwhile), for the caller to name
        except DATABASE_ERRORS as exc:
            raise database_trouble(operation, exc) from None
        self.notifier.changed(scope.touched)

    @contextlib.asynccontextmanager
    async def reading(self, operation: str) -> AsyncIterator[AsyncSession]:
        try:
            async with self._sessions() as session:
                yield session
        except DATABASE_ERRORS as exc:
            raise database_trouble(operation, exc) from None
