"""Where an object sits in the agency tree, for the management plane's permission checks.

Owns: read-only lookups: the agency tree (an agency's path to the root, a
subtree's codes) and the agency that owns an employee, a message (its issuing
agency) or a delivery queue entry. Must not: change anything or decide who may
see what (admin.services.actor does).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import Agency, DeliveryQueueEntry, Employee, Message, MessageCopy


@dataclass(frozen=True)
class AgencyTree:
    """The agencies' parent links by code (None for a root)."""

    parents: Mapping[str, str | None]

    def path(self, code: str | None) -> tuple[str, ...] | None:
        """`code` and its ancestors, root first; None for an unknown agency."""
        if code is None or code not in self.parents:
            return None
        chain: list[str] = []
        walk: str | None = code
        while walk is not None and walk not in chain:
            chain.append(walk)
            walk = self.parents.get(walk)
        return tuple(reversed(chain))

    def subtree(self, root: str) -> frozenset[str]:
        """`root` and every agency below it."""
        return frozenset(c for c in self.parents if root in (self.path(c) or ()))


async def load_tree(session: AsyncSession) -> AgencyTree:
    rows = (await session.execute(select(Agency.id, Agency.code, Agency.parent_id))).all()
    codes = {row[0]: row[1] for row in rows}
    return AgencyTree({row[1]: codes.get(row[2]) if row[2] else None for row in rows})


async def employee_agency(session: AsyncSession, address: str) -> str | None:
    found: str | None = await session.scalar(
        select(Agency.code)
        .join(Employee, Employee.agency_id == Agency.id)
        .where(Employee.address == address.strip().lower())
    )
    return found


async def message_agency(session: AsyncSession, registry: str) -> str | None:
    """The issuing (sender's) agency of the message with this registry number."""
    found: str | None = await session.scalar(
        select(Agency.code)
        .join(Message, Message.agency_id == Agency.id)
        .where(Message.registry_number == registry.strip())
    )
    return found


async def queue_entry_agency(session: AsyncSession, entry_id: int) -> str | None:
    """The issuing agency of the message a delivery queue entry carries."""
    found: str | None = await session.scalar(
        select(Agency.code)
        .join(Message, Message.agency_id == Agency.id)
        .join(MessageCopy, MessageCopy.message_id == Message.id)
        .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
        .where(DeliveryQueueEntry.id == entry_id)
    )
    return found


async def employees_of(
    session: AsyncSession, addresses: Collection[str], agencies: Collection[str]
) -> frozenset[str]:
    """Those of `addresses` (lower case) that belong to an employee of `agencies`."""
    if not addresses or not agencies:
        return frozenset()
    rows = await session.scalars(
        select(Employee.address)
        .join(Agency, Agency.id == Employee.agency_id)
        .where(Employee.address.in_(sorted(addresses)), Agency.code.in_(sorted(agencies)))
    )
    return frozenset(rows.all())
