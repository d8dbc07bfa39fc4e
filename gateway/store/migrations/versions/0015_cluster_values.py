"""The cluster's shared facts: the master-key check, config digests, signing keys.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-15

`cluster_values` holds named values every node must agree with: the master-key
check value and the digests of the cluster-wide configuration (policy, peers,
mail servers). `signing_keys` holds the token signing key set (public parts; the
current key's private part sealed with the master key). Both start empty: the
first node that starts after the upgrade (`barid init`, `barid serve` or any
command that opens the database) records its values (gateway.store.cluster_state).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_values",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_cluster_values"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_private", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.CheckConstraint("status IN ('current', 'retired')", name="ck_signing_keys_status"),
        sa.PrimaryKeyConstraint("key_id", name="pk_signing_keys"),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("cluster_values")
