"""Receipt summaries: a "summary" receipt job kind and the stored delivery evidence.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05

A message with more copies than `[receipts] summary_threshold` gets one summary
in the sender's Receipts; each of its deliveries is then not filed as a
receipt: a signed statement is kept in `receipt_jobs.evidence` instead
(gateway.delivery.evidence; `barid receipts evidence` reads it back). Existing
rows keep NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_OLD = "kind IN ('acceptance', 'delivery', 'non-delivery')"
_NEW = "kind IN ('acceptance', 'delivery', 'non-delivery', 'summary')"


def upgrade() -> None:
    with op.batch_alter_table("receipt_jobs") as batch:
        batch.add_column(sa.Column("evidence", sa.Text(), nullable=True))
        batch.drop_constraint("ck_receipt_jobs_kind", type_="check")
        batch.create_check_constraint("ck_receipt_jobs_kind", sa.text(_NEW))


def downgrade() -> None:
    op.execute("DELETE FROM receipt_jobs WHERE kind = 'summary'")
    with op.batch_alter_table("receipt_jobs") as batch:
        batch.drop_constraint("ck_receipt_jobs_kind", type_="check")
        batch.create_check_constraint("ck_receipt_jobs_kind", sa.text(_OLD))
        batch.drop_column("evidence")
