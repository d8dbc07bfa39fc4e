"""Blobs may live outside the database: where (`location`) and the object's SHA-256.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

Existing rows keep their ciphertext in the row (both columns NULL). The index on
`location` lets the garbage collector ask, per page of listed objects, which
ones a row still references.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.add_column(sa.Column("location", sa.String(200), nullable=True))
        batch.add_column(sa.Column("location_sha256", sa.String(64), nullable=True))
    op.create_index("ix_blobs_location", "blobs", ["location"])


def downgrade() -> None:
    op.drop_index("ix_blobs_location", table_name="blobs")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("location_sha256")
        batch.drop_column("location")
