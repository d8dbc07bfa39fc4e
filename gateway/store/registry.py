"""Registry numbers of official messages: their text form and gap-free serials.

Owns: `format_registry` (MOH/2026/000042) and `allocate_serials`, which takes
the next serials of (agency, year) inside the caller's transaction. Must not:
commit, or know what the numbers are given to.

Serials are gap-free per (agency, year) across gateway nodes: the counter row is
created or advanced by one INSERT ... ON CONFLICT DO UPDATE ... RETURNING, which
holds its row lock (PostgreSQL) or the database write lock (SQLite, BEGIN
IMMEDIATE) until commit; a rollback returns the serials.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import RegistryCounter

SERIAL_DIGITS = 6


def format_registry(agency_code: str, year: int, serial: int) -> str:
    """`<AGENCY>/<YEAR>/<serial>`, the serial zero-padded to six digits (MOH/2026/000042)."""
    return f"{agency_code}/{year}/{serial:0{SERIAL_DIGITS}d}"


async def allocate_serial(session: AsyncSession, agency_id: int, year: int) -> int:
    """Take the next registry serial of (agency, year); see `allocate_serials`."""
    return await allocate_serials(session, agency_id, year, 1)


async def allocate_serials(session: AsyncSession, agency_id: int, year: int, count: int) -> int:
    """Take the next `count` registry serials of (agency, year); returns the first.

    The counter row stays locked until the transaction ends; a rollback returns
    the serial, so serials are gap-free. The first number of a year is 1.
    """
    dialect = session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # One statement: create the year's counter past the taken serials, or advance it.
    stmt = upsert(RegistryCounter).values(agency_id=agency_id, year=year, next_serial=count + 1)
    taken = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=["agency_id", "year"],
            set_={"next_serial": RegistryCounter.next_serial + count},
        ).returning(RegistryCounter.next_serial - count)
    )
    if taken is None:  # pragma: no cover - an upsert always returns its row
        raise RuntimeError("registry counter row missing")
    return int(taken)
