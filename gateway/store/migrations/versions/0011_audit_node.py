"""Audit events record the node that appended them (server.node_id).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-04

Several gateway nodes share one database; each audit event (and so each access
trail entry, a "message.access" event) names the node it was appended on. Events
from before have none (NULL): their MACs do not cover a node, and stay valid.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("audit_events")}
    if "node" not in columns:  # kept by a downgrade (see there)
        with op.batch_alter_table("audit_events") as batch:
            batch.add_column(sa.Column("node", sa.String(64), nullable=True))


def downgrade() -> None:
    # The column stays: the MACs of the events appended since cover their node, so
    # dropping it would break the chain (indistinguishable from tampering). Older
    # code ignores it; an upgrade finds it in place.
    pass
