"""API tokens remember the Idempotency-Key they were created with (a keyed hash).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-12

A retry of a token creation with the same key must never make a second token:
the key's keyed hash is kept on the token row, unique per creator. Existing
tokens have none (NULL, which the unique constraint does not compare).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admin_tokens") as batch:
        batch.add_column(sa.Column("idempotency_hash", sa.String(64), nullable=True))
        batch.create_unique_constraint(
            "uq_admin_tokens_created_by", ["created_by", "idempotency_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("admin_tokens") as batch:
        batch.drop_constraint("uq_admin_tokens_created_by", type_="unique")
        batch.drop_column("idempotency_hash")
