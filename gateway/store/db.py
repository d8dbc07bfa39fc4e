"""Engine and session set-up for SQLite (embedded default) and PostgreSQL.

Owns: connection settings that make commits durable (SQLite WAL,
synchronous=FULL, foreign keys on, BEGIN IMMEDIATE for writers so they queue
instead of failing, deferred BEGIN for readers) and the `transaction()` helper.
Must not: define tables or queries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_POOL_SIZE = 20


def utcnow() -> str:
    """Timestamps are stored as fixed-width ISO 8601 UTC text: sortable and hashable."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso(moment: dt.datetime) -> str:
    """The schema's timestamp text (as `utcnow`) for an aware datetime."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the driver so that "begin" below is ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


WRITE = {"barid_write": True}  # execution option marking a write transaction


def _sqlite_begin(conn: Any) -> None:
    # Writers (see `transaction`) BEGIN IMMEDIATE: they take the write lock up
    # front and wait for each other (busy_timeout) instead of failing on a lock
    # upgrade mid-transaction. Readers BEGIN (deferred) and never block anyone (WAL).
    if conn.get_execution_options().get("barid_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def create_engine(url: str, *, pool_size: int = 5, connect_timeout: float = 5.0) -> AsyncEngine:
    """Create the async engine for `url`; SQLite files get durable pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Readers must not queue behind each other (or behind the writer) for a
        # connection: SQLite's WAL lets them all read while one writes.
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=max(pool_size, SQLITE_POOL_SIZE),
            max_overflow=SQLITE_POOL_SIZE,
            hide_parameters=True,  # errors (and so logs) never carry row values
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"timeout": connect_timeout},
    )


async def durability_problems(engine: AsyncEngine) -> list[str]:
    """Server settings under which a committed (acknowledged) message could be lost.

    PostgreSQL only: `fsync=off` or `synchronous_commit=off`. SQLite's are ours
    (synchronous=FULL above). Empty when the database keeps its promises.
    """
    if is_sqlite(engine):
        return []
    problems = []
    async with engine.connect() as conn:
        for name in ("fsync", "synchronous_commit"):
            value = (await conn.exec_driver_sql(f"SHOW {name}")).scalar()
            if str(value).lower() == "off":
                problems.append(f"{name}=off")
    return problems


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of writing work: commits on success, rolls back on any exception.

    Every write goes through here (on SQLite it takes the write lock at BEGIN).
    """
    async with sessions() as session, session.begin():
        await session.connection(execution_options=WRITE)
        yield session


_WRITE_LOCKS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def sqlite_write_lock(sessions: async_sessionmaker[AsyncSession]) -> asyncio.Lock | None:
    """One asyncio lock per SQLite engine, shared by every writer of this process.

    SQLite has one writer at a time; queueing our writers on this lock avoids the
    driver's busy-wait sleeps (other processes still meet busy_timeout). None for
    PostgreSQL, where writers run concurrently.
    """
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        return None
    lock = _WRITE_LOCKS.get(bind.sync_engine)
    if lock is None:
        lock = _WRITE_LOCKS[bind.sync_engine] = asyncio.Lock()
    return lock


@asynccontextmanager
async def writing(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """`transaction()` queued behind this process's other writers on SQLite."""
    lock = sqlite_write_lock(sessions)
    if lock is None:
        async with transaction(sessions) as session:
            yield session
        return
    async with lock, transaction(sessions) as session:
        yield session
