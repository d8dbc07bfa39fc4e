"""Audit trail that proves itself: an authenticated head row and signed checkpoints.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

The head MAC needs the audit key, which migrations do not have: existing heads
stay unsealed (mac NULL) until `barid init` (the upgrade step) or the first
append seals them (gateway.store.audit.seal_head).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("seq", BigId, nullable=False, server_default="0"))
        batch.add_column(sa.Column("sealed_at", sa.String(32), nullable=True))
        batch.add_column(sa.Column("mac", sa.String(64), nullable=True))
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BigId, nullable=False),
        sa.Column("event_id", BigId, nullable=False),
        sa.Column("event_mac", sa.String(64), nullable=False),
        sa.Column("count", BigId, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_checkpoints"),
        sa.UniqueConstraint("event_id", name="uq_audit_checkpoints_event_id"),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("mac")
        batch.drop_column("sealed_at")
        batch.drop_column("seq")
