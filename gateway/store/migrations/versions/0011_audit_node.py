"""Audit events record the node that appended them (server.node_id); events wait in
`audit_pending` while another transaction holds the chain's head (PostgreSQL).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-04

Several gateway nodes share one database; each audit event (and so each access
trail entry, a "message.access" event) names the node it was appended on. Events
from before have none (NULL): their MACs do not cover a node, and stay valid.
`audit_pending` holds events staged without the head lock until they are
linked into the chain (gateway.store.audit_pending); SQLite never uses it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("audit_events")}
    if "node" not in columns:  # kept by a downgrade (see there)
        with op.batch_alter_table("audit_events") as batch:
            batch.add_column(sa.Column("node", sa.String(64), nullable=True))


def downgrade() -> None:
    # The column stays: the MACs of the events appended since cover their node, so
    # dropping it would break the chain (indistinguishable from tampering). Older
    # code ignores it; an upgrade finds it in place. Staged events (audit_pending)
    # would be lost with their table: a downgrade refuses while any remain (any
    # append, or `barid audit verify`, links them into the chain first).
    left = op.get_bind().execute(sa.text("SELECT count(*) FROM audit_pending")).scalar()
    if left:
        raise RuntimeError(f"{left} audit events are not in the chain yet")
    op.drop_table("audit_pending")
