"""Cluster-wide counters: login-failure throttles and the verification radar.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

Several gateway nodes on one database must share their abuse limits, or a limit
of N becomes N per node. One small table of windows, incremented with an upsert;
keys are keyed hashes (no address or login in clear). Old windows are pruned by
the nodes themselves.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edge_counters",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key_hash", "window_start", name="pk_edge_counters"),
    )


def downgrade() -> None:
    op.drop_table("edge_counters")
